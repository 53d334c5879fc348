"""Starting a login once the user has proved who they are, by any method.

The password form (``auth.views``), the second step (``twofactor.login``) and a
passkey (``passkeys.signin``) all end here, so every login starts the same way: one
transaction records the login row with how it was made, what the proof leaves behind
(the throttle's reset, a rehash) and the trusted device; then a fresh session cookie,
the signal and the flash.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from quart import redirect, request, session, url_for
from sqlalchemy.ext.asyncio import AsyncSession
from werkzeug.wrappers import Response as WerkzeugResponse

from .. import signals
from ..db import db
from ..web.messages import flash
from . import credentials, devices, logins, settings
from .registry import registry, strong_proof

# The session cookie's keys of a login.
LOGIN_KEY = "login"
# Written with LOGIN_KEY at login and never again: when the login's absolute limit is
# (Unix seconds), and whose it is. They tell a token the database no longer knows
# (ended elsewhere) from one past its limit, and name the user on the 503 page.
LOGIN_UNTIL_KEY = "login_until"
LOGIN_NAME_KEY = "login_name"
# The endpoint a feature's gate holds this login on (registry ``login_gates``), if any.
LOGIN_HELD_KEY = "login_held"


async def start_session(
    user_id: int,
    username: str,
    *,
    remember: bool,
    method: str,
    device: str | None,
    record: Callable[[AsyncSession], Awaitable[None]],
) -> str | None:
    """Log ``username`` in; the device nonce the response must set, or None.

    ``record`` writes what the proof leaves behind in the transaction that records the
    login: if the database fails there, nothing is recorded and the client sees the 503
    page. ``method`` is one of the registry's ``login_methods``; ``device`` is the nonce of this
    browser's trusted device cookie, if any.
    """
    config = settings.current()
    async with db.session() as dbs:
        await record(dbs)
        if method in registry().strong_methods:
            await strong_proof(dbs, user_id)
        token = await logins.start(
            dbs,
            config,
            user_id,
            remember=remember,
            address=request.remote_addr,
            user_agent=request.headers.get("User-Agent"),
            method=method,
        )
        held = None
        for gate in registry().login_gates:
            if await gate.holds(dbs, user_id):
                held = gate.endpoint
                break
        presented = devices.presented(request.cookies, config, username)
        nonce = await devices.remember(dbs, config, user_id, known=device, nonce=presented)
        await dbs.commit()
    # A fresh session: the pre-login cookie and its CSRF token die here (fixation).
    session.clear()
    session[LOGIN_KEY] = token
    # The row's own limit, give or take the milliseconds since logins.start.
    session[LOGIN_UNTIL_KEY] = int(time.time() + logins.lifetime(config, remember=remember))
    session[LOGIN_NAME_KEY] = username
    if held is not None:
        session[LOGIN_HELD_KEY] = held
    session.permanent = remember
    # A browser that kept its trusted-device cookie keeps its nonce; any other is new.
    new_device = nonce is None or nonce != presented
    signals.send(
        signals.user_logged_in,
        username=username,
        remember=remember,
        user_id=user_id,
        new_device=new_device,
    )
    await flash(f"You were signed in as {username}.", "success")
    return nonce


async def complete_login(
    checked: credentials.Checked, *, remember: bool, next_url: str | None, method: str = "password"
) -> WerkzeugResponse:
    """Log ``checked.user`` in after a right password (and code), and send them on.

    The password form calls it, and the second step once its code was right; the
    throttle's counters for this attempt are reset in the login's transaction.
    """
    user = checked.user
    assert user is not None  # checked and right

    async def record(dbs: AsyncSession) -> None:
        await credentials.record_success(dbs, checked)

    nonce = await start_session(
        user.id,
        user.username,
        remember=remember,
        method=method,
        device=checked.device,
        record=record,
    )
    response = redirect(next_url or url_for("pages.hello"))
    if nonce is not None:
        devices.set_cookie(response, settings.current(), user.username, nonce)
    return response


def release_login() -> None:
    """Let this browser's login past the gate that held it (its feature's page decides)."""
    session.pop(LOGIN_HELD_KEY, None)
