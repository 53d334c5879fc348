"""The session cookie: Quart's signed cookie, with its signer built once, not per request.

Quart builds an ``itsdangerous`` serializer each time it opens or saves a session, and
each one serializes an empty dict to learn whether it makes text: two of those a
request were ~10% of an authenticated /hello in the profile (issue 8).
"""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer
from quart import Quart
from quart.sessions import SecureCookieSessionInterface


class CookieSessions(SecureCookieSessionInterface):
    """Signed-cookie sessions whose serializer is kept while the keys stay the same."""

    def __init__(self) -> None:
        self._signer: tuple[tuple[str | bytes, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Quart) -> URLSafeTimedSerializer | None:
        """The serializer for the app's current keys (None without a secret key)."""
        if not app.secret_key:
            return None
        keys = (*app.config["SECRET_KEY_FALLBACKS"], app.secret_key)
        if self._signer is None or self._signer[0] != keys:
            signer = super().get_signing_serializer(app)
            assert signer is not None
            self._signer = (keys, signer)
        return self._signer[1]


def init_app(app: Quart) -> None:
    """Serve the app's sessions through :class:`CookieSessions`."""
    app.session_interface = CookieSessions()
