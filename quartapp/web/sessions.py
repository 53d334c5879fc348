"""The session cookie: Quart's signed cookie, re-signed during a key rotation.

Its serializer is built once, not per request (:class:`.speedups.CachedSigner`).

A cookie the current key has verified is remembered with what it holds (when that is
only strings, numbers and booleans, as a logged-in session's token and CSRF token are),
so the next request with the same cookie skips the HMAC, base64 and JSON of opening it:
about a tenth of a logged-in page. Its age is still checked on every request.

During a key rotation a cookie signed with a key in ``SECRET_KEY_FALLBACKS`` is still
accepted, and is sent back signed with the new key on that same response, so it no
longer depends on the old key by the time the fallback is dropped.
"""

from __future__ import annotations

import time
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from quart import Quart
from quart.sessions import SecureCookieSession
from quart.wrappers import BaseRequestWebsocket

from .speedups import CachedSigner

# Verified cookies remembered per process; past this many, the memory starts again.
OPENED_MAX = 10_000
# What a remembered session may hold: values a request can replace but not change in
# place, so each request's copy of the dict is as good as a fresh decoding.
IMMUTABLE = (str, int, float, bool, type(None))


class CookieSessions(CachedSigner):
    """Signed-cookie sessions that move a cookie signed with a fallback key to the new one."""

    def __init__(self) -> None:
        super().__init__()
        # cookie -> (what it holds, when it was signed), verified with the current key.
        self._opened: dict[str, tuple[dict[str, Any], float]] = {}
        # The current key alone, to tell a cookie signed with a fallback key.
        self._current: tuple[str | bytes, URLSafeTimedSerializer] | None = None

    def current_key_serializer(self, app: Quart) -> URLSafeTimedSerializer:
        """A serializer that accepts the current key only."""
        key = app.secret_key
        assert key
        if self._current is None or self._current[0] != key:
            self._opened.clear()  # verified with a key that is no longer current
            self._current = (
                key,
                URLSafeTimedSerializer(
                    key,
                    salt=self.salt,
                    serializer=self.serializer,
                    signer_kwargs={
                        "key_derivation": self.key_derivation,
                        "digest_method": self.digest_method,
                    },
                ),
            )
        return self._current[1]

    async def open_session(
        self, app: Quart, request: BaseRequestWebsocket
    ) -> SecureCookieSession | None:
        """Open the session; one signed with a fallback key is marked to be re-signed.

        The current key is tried first, which is what itsdangerous does anyway (newest
        key first), so a cookie already on the new key costs the same; only a cookie on
        an old key is checked a second time, once, before it is re-signed. Quart alone
        would re-sign only "remember me" cookies (``SESSION_REFRESH_EACH_REQUEST``), and
        the others would end when the fallback is dropped.
        """
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie or not app.secret_key:
            return await super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        serializer = self.current_key_serializer(app)
        known = self._opened.get(cookie)
        if known is not None and 0 <= time.time() - known[1] <= max_age:
            return self.session_class(known[0])
        try:
            data, signed = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except BadSignature:
            pass
        else:
            if isinstance(data, dict) and all(isinstance(v, IMMUTABLE) for v in data.values()):
                if len(self._opened) >= OPENED_MAX:
                    self._opened.clear()
                self._opened[cookie] = (data, signed.timestamp())
            return self.session_class(data)
        if not app.config["SECRET_KEY_FALLBACKS"]:
            return self.session_class()  # forged, expired or from another key
        session = await super().open_session(app, request)
        if session:
            session.modified = True  # signed with a fallback key: save it with the new one
        return session


def init_app(app: Quart) -> None:
    """Serve the app's sessions through :class:`CookieSessions`."""
    app.session_interface = CookieSessions()
