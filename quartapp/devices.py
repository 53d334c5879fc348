"""Device cookies (OWASP): a browser that has logged in as a user is known next time.

After a successful login the browser gets a signed cookie naming the user and a
random nonce. While strangers keep that username locked, attempts from a browser
holding it count against the nonce instead (:mod:`.throttle`), with a small limit of
their own, so the owner can still log in. A forged or other user's cookie is ignored.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from quart import Response

SALT = "quartapp.device"
PREFIX = "device-"


def _serializer(config: Mapping[str, Any]) -> URLSafeTimedSerializer:
    # Old keys still verify, so rotating SECRET_KEY does not forget every device.
    keys = [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=SALT)


def cookie_name(username: str) -> str:
    """One cookie per username, named without revealing the name."""
    return PREFIX + hashlib.sha256(username.encode()).hexdigest()[:16]


def trusted_nonce(
    cookies: Mapping[str, str], config: Mapping[str, Any], username: str
) -> str | None:
    """The nonce of a valid device cookie for ``username`` in this request, if any."""
    value = cookies.get(cookie_name(username))
    if not value:
        return None
    max_age = config["DEVICE_COOKIE_DAYS"] * 86400
    try:
        data = _serializer(config).loads(value, max_age=max_age)
    except BadSignature:
        return None
    if not isinstance(data, list) or len(data) != 2 or data[0] != username:
        return None
    nonce = data[1]
    return nonce if isinstance(nonce, str) and len(nonce) == 22 else None


def remember_device(
    response: Response, config: Mapping[str, Any], username: str, nonce: str | None
) -> None:
    """Give the browser (or renew) its device cookie for ``username``."""
    value = _serializer(config).dumps([username, nonce or secrets.token_urlsafe(16)])
    response.set_cookie(
        cookie_name(username),
        value,
        max_age=config["DEVICE_COOKIE_DAYS"] * 86400,
        path="/",
        secure=bool(config["SESSION_COOKIE_SECURE"]),
        httponly=True,
        samesite="Lax",
    )
