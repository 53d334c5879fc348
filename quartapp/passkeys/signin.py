"""Signing in with a passkey, and confirming a login with one (the ``passkey_signin`` blueprint).

A passkey made with user verification is something the user has and something they
are (or know): a complete sign-in, with no password and no second step. The login
starts exactly as a password login does (:func:`quartapp.auth.signin.start_session`),
recorded with the method "passkey".

A sign-in's challenge is kept in the browser's signed session cookie (anyone may ask
for one, so it takes no room anyone else needs) and taken out when an answer comes;
its use is recorded in the database only once the signature verified, which refuses
the same answer sent again with an old copy of the cookie. A confirmation's challenge
is a row of the signed-in user's (:func:`.store.new_challenge`).

Each answer is checked in this order, every failure a 4xx in JSON: the body's shape,
the relying party, the challenge (taken once, whatever comes next) and whose the
credential is, the throttle (the attempt is counted, or refused during a lockout), the
credential (known, and the user's own when confirming), then py_webauthn's checks of
the signature, origin, RP ID and user verification, the challenge's use (a sign-in's,
recorded once), and last the signature count.

Attempts count in the login throttle per address and per trusted device: a passkey
has no guessable secret, so they do not count against the username, and a stranger
guessing passwords cannot lock the owner's passkey out.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Mapping

from quart import Blueprint, has_request_context, request, session, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy.ext.asyncio import AsyncSession

from .. import signals
from ..auth import devices, reauth, throttle
from ..auth import settings as auth_settings
from ..auth.current import current_user, login_required, signed_in
from ..auth.settings import AuthSettings
from ..auth.signin import start_session
from ..db import db
from ..web.navigation import safe_next
from . import ceremony, store
from .answers import answer, body, flag, party, refusal
from .ceremony import Refused, base64url_to_bytes, bytes_to_base64url
from .models import Passkey

bp = Blueprint("passkey_signin", __name__)


async def has_passkey(user_id: int) -> bool:
    """Whether the user has a passkey: a factor that makes a login strong (auth.reauth)."""
    async with db.session() as dbs:
        return await store.count(dbs, user_id) > 0


EXPIRED = "That sign-in request expired or was used already. Please try again."
UNKNOWN = "This passkey is not registered here. Sign in with your password, then add it."
CONFIRM_EXPIRED = "That request expired or was used already. Please try again."
NOT_YOURS = "That passkey is not one of this account's."
CLONED = "This passkey was refused: it may have been copied. Sign in another way."
NO_PASSKEYS = "This account has no passkeys. Confirm with your password."
LOCKED = "There were too many failed attempts. Try again later."
# The session key of the sign-in challenges handed out to this browser, and how many
# it keeps: "<challenge, base64url>:<when it ends, Unix seconds>", newest first.
SIGNIN_CHALLENGES = "passkey_signin"
BROWSER_CHALLENGES = 3


def counters(config: AuthSettings, address: str, device: str | None) -> list[throttle.Counter]:
    """What a passkey attempt counts against: the address's networks, then the device."""
    found = throttle.counters(config, username="", address=address, device=device)
    return [counter for counter in found if counter.scope != throttle.USER]


async def count_attempt(wanted: list[throttle.Counter]) -> Refused | None:
    """Refuse during a lockout; else count this attempt before it is checked."""
    config = auth_settings.current()
    async with db.session() as dbs:
        lockout = await throttle.refused_by(dbs, wanted)
        if lockout is None:
            lockout = await throttle.count(dbs, config, wanted)
            await dbs.commit()
    if lockout is None:
        return None
    return Refused(LOCKED, "locked out", status=429)


@bp.post("/login/passkey/options")
async def login_options() -> ResponseReturnValue:
    """Options for a sign-in with any passkey of this site: no allowCredentials.

    The challenge is kept in the asker's session cookie, not the database: anyone may
    ask, so nothing one client asks for can crowd out another's, whatever network
    they share.
    """
    try:
        await body()
        relying = party()
    except Refused as error:
        return refusal(error)
    address = throttle.address_key(request.remote_addr, auth_settings.current())
    async with db.session() as dbs:
        # A read only: asking for options writes nothing.
        lockout = await throttle.refused_by(dbs, counters(auth_settings.current(), address, None))
    if lockout is not None:
        return answer(429, error=LOCKED)
    challenge = secrets.token_bytes(store.CHALLENGE_BYTES)
    hand_out(challenge)
    return answer(publicKey=ceremony.authentication_options(relying, challenge=challenge))


def hand_out(challenge: bytes) -> None:
    """Keep a sign-in challenge, and when it ends, in the session (newest first).

    A few are kept, so two tabs of one browser can each sign in; flat text, so the
    session stays one that web.sessions can remember opened.
    """
    expires = time.time() + ceremony.CHALLENGE_LIFETIME
    entry = f"{bytes_to_base64url(challenge)}:{expires:.0f}"
    held = session.get(SIGNIN_CHALLENGES, "")
    kept = held.split()[: BROWSER_CHALLENGES - 1] if isinstance(held, str) else []
    session[SIGNIN_CHALLENGES] = " ".join([entry, *kept])


def take_back() -> dict[bytes, float]:
    """The session's sign-in challenges and when each ends, taken out of it.

    Taken whenever an answer arrives, right or wrong: each challenge is answered once.
    """
    held = session.pop(SIGNIN_CHALLENGES, "")
    found: dict[bytes, float] = {}
    for entry in held.split() if isinstance(held, str) else []:
        text, _, expires = entry.partition(":")
        try:
            found[base64url_to_bytes(text)] = float(expires)
        except ValueError:  # the cookie is signed: only an older format gets here
            continue
    return found


def live_until(held: Mapping[bytes, float], challenge: bytes) -> float | None:
    """When ``challenge`` ends, if it is one of ``held`` and has not ended yet."""
    for candidate, expires in held.items():
        if hmac.compare_digest(candidate, challenge) and expires > time.time():
            return expires
    return None


@bp.post("/login/passkey")
async def login() -> ResponseReturnValue:
    """Check an assertion of a discoverable passkey and log its user in."""
    held = take_back()
    config = auth_settings.current()
    next_url = safe_next(request.args.get("next"))
    username: str | None = None
    try:
        data = await body()  # first: a body no page sends is a 4xx, signed in or not
        if current_user() is not None:
            return answer(redirect=url_for("pages.hello"))
        remember = flag(data, "remember")
        relying = party()
        credential = ceremony.parse_assertion(data.get("credential"))
        challenge = ceremony.challenge_of(credential)
        address = throttle.address_key(request.remote_addr, config)
        expires = live_until(held, challenge)
        async with db.session() as dbs:
            found = await store.find(dbs, credential.id)
        username = found.username if found else None
        device = await devices.trusted(config, request.cookies, username) if username else None
        # Counted once the device is known, before anything is verified, as a password is.
        refused = await count_attempt(counters(config, address, device))
        if refused is not None:
            raise refused
        if expires is None:
            raise Refused(EXPIRED, "challenge")
        if found is None:
            raise Refused(UNKNOWN, "unknown passkey")
        username = found.username
        passkey = found.passkey
        handle = credential.response.user_handle
        if handle is not None and bytes(handle) != bytes(passkey.user_handle):
            raise Refused(ceremony.NOT_VERIFIED, "user handle")
        received = ceremony.verify_assertion(relying, credential, challenge, passkey.public_key)
        # Only now, with a registered passkey's signature verified, is a row written.
        async with db.session() as dbs:
            if not await store.spend_signin_challenge(dbs, challenge, passkey.user_id, expires):
                raise Refused(EXPIRED, "replay")
        await check_count(username=username, passkey=passkey, received=received)
    except Refused as error:
        if error.reason != "not json":
            signals.send(signals.passkey_failed, username=username, reason=error.reason)
        return refusal(error)

    async def record(dbs: AsyncSession) -> None:
        await throttle.succeeded(dbs, username=username, address=address, device=device)

    nonce = await start_session(
        passkey.user_id,
        username,
        remember=remember,
        method="passkey",
        device=device,
        record=record,
    )
    signals.send(signals.passkey_signed_in, username=username, name=passkey.name)
    response = answer(redirect=next_url or url_for("pages.hello"))
    if nonce is not None:
        devices.set_cookie(response, config, username, nonce)
    return response


async def check_count(*, username: str, passkey: Passkey, received: int) -> None:
    """Refuse a signature count that did not go up, and move the stored one on.

    Compared only after the signature was verified, so only a genuine authenticator
    can report a clone; the update names the count it was checked against.
    """
    stored = int(passkey.sign_count)
    moved = False
    if not ceremony.is_clone(stored, received):
        async with db.session() as dbs:
            moved = await store.record_use(dbs, passkey.id, stored, received)
    if not moved:
        signals.send(
            signals.passkey_clone_refused,
            username=username,
            name=passkey.name,
            stored=stored,
            received=received,
        )
        raise Refused(CLONED, "clone")


@bp.post("/login/confirm/passkey/options")
@login_required
async def confirm_options() -> ResponseReturnValue:
    """Options to confirm this login with one of the user's own passkeys."""
    try:
        await body()
        relying = party()
    except Refused as error:
        return refusal(error)
    async with db.session() as dbs:
        own = await store.for_user(dbs, signed_in().id)
        if not own:
            return answer(400, error=NO_PASSKEYS)
        challenge = await store.new_challenge(dbs, "confirm", signed_in().id)
    options = ceremony.authentication_options(
        relying, challenge=challenge, allowed=[row.credential_id for row in own]
    )
    return answer(publicKey=options)


@bp.post("/login/confirm/passkey")
@login_required
async def confirm() -> ResponseReturnValue:
    """Confirm this login with an assertion of one of the user's passkeys, then go on."""
    config = auth_settings.current()
    user = signed_in()
    next_url = safe_next(request.args.get("next")) or url_for("account.overview")
    try:
        data = await body()
        relying = party()
        credential = ceremony.parse_assertion(data.get("credential"))
        challenge = ceremony.challenge_of(credential)
        address = throttle.address_key(request.remote_addr, config)
        device = await devices.trusted(config, request.cookies, user.username)
        wanted = throttle.counters(config, username=user.username, address=address, device=device)
        refused = await count_attempt(wanted)
        if refused is not None:
            raise refused
        async with db.session() as dbs:
            if await store.claim_challenge(dbs, challenge, "confirm", user.id) is None:
                raise Refused(CONFIRM_EXPIRED, "challenge")
            found = await store.find(dbs, credential.id)
        if found is None or found.passkey.user_id != user.id:
            raise Refused(NOT_YOURS, "not the user's passkey")
        passkey = found.passkey
        received = ceremony.verify_assertion(relying, credential, challenge, passkey.public_key)
        await check_count(username=user.username, passkey=passkey, received=received)
    except Refused as error:
        if error.reason != "not json":
            signals.send(signals.passkey_failed, username=user.username, reason=error.reason)
        return refusal(error)
    async with db.session() as dbs:
        await throttle.succeeded(dbs, username=user.username, address=address, device=device)
        await dbs.commit()
    await reauth.confirm_login(user.login_id, "passkey")
    signals.send(signals.reauthenticated, username=user.username, method="passkey")
    return answer(redirect=next_url)


@bp.app_context_processor
async def confirm_page_context() -> dict[str, object]:
    """Tell the confirm page whether to offer "Confirm with a passkey" (one query, there only)."""
    if not has_request_context() or request.endpoint != "reauth.confirm" or current_user() is None:
        return {}
    async with db.session() as dbs:
        has = await store.count(dbs, signed_in().id) > 0
    return {"user_has_passkeys": has}
