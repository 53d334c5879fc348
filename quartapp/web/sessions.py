"""The session cookie: Quart's signed cookie, re-signed during a key rotation.

Its serializer is built once, not per request (:class:`.speedups.CachedSigner`).
During a key rotation a cookie signed with a key in ``SECRET_KEY_FALLBACKS`` is still
accepted, and is sent back signed with the new key on that same response, so it no
longer depends on the old key by the time the fallback is dropped.
"""

from __future__ import annotations

from itsdangerous import BadSignature, URLSafeTimedSerializer
from quart import Quart
from quart.sessions import SecureCookieSession
from quart.wrappers import BaseRequestWebsocket

from .speedups import CachedSigner


class CookieSessions(CachedSigner):
    """Signed-cookie sessions that move a cookie signed with a fallback key to the new one."""

    def __init__(self) -> None:
        super().__init__()
        # The current key alone, to tell a cookie signed with a fallback key.
        self._current: tuple[str | bytes, URLSafeTimedSerializer] | None = None

    def current_key_serializer(self, app: Quart) -> URLSafeTimedSerializer:
        """A serializer that accepts the current key only."""
        key = app.secret_key
        assert key
        if self._current is None or self._current[0] != key:
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

        Without fallbacks this is Quart's own. With them, the current key is tried
        first, which is what itsdangerous does anyway (newest key first), so a cookie
        already on the new key costs the same; only a cookie on an old key is checked a
        second time, once, before it is re-signed. Quart alone would re-sign only
        "remember me" cookies (``SESSION_REFRESH_EACH_REQUEST``), and the others would
        end when the fallback is dropped.
        """
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie or not app.secret_key or not app.config["SECRET_KEY_FALLBACKS"]:
            return await super().open_session(app, request)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        try:
            return self.session_class(
                self.current_key_serializer(app).loads(cookie, max_age=max_age)
            )
        except BadSignature:
            pass
        session = await super().open_session(app, request)
        if session:
            session.modified = True  # signed with a fallback key: save it with the new one
        return session


def init_app(app: Quart) -> None:
    """Serve the app's sessions through :class:`CookieSessions`."""
    app.session_interface = CookieSessions()
