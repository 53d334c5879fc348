"""What the tests of leaving share: an account with a row in every table that can hold
one of its own, and the tables' rows counted by owner."""

from __future__ import annotations

import time
from typing import Any

from quart import Quart
from sqlalchemy import select

from quartapp.auth.models import Device, DeviceCode, ThrottleCounter, User
from quartapp.db import db
from quartapp.mail.models import EmailAddress, MailToken, OutboxMessage
from quartapp.passkeys.models import Passkey, PasskeyChallenge
from quartapp.twofactor.models import PendingLogin, RecoveryCode, SecondFactorFailure, TotpFactor
from tests.conftest import aquery

# Every table with a user_id, and what must be left of a deleted user's rows in it.
OWNED = (
    "logins",
    "devices",
    "device_codes",
    "totp_factors",
    "recovery_codes",
    "pending_logins",
    "second_factor_failures",
    "passkeys",
    "passkey_challenges",
    "email_addresses",
    "mail_tokens",
    "mail_outbox",
    "security_events",
)
SECRET = "NRSWC5TJNZTS25DFON2C223FPEWTAMJSGM2DKNQ"  # the seeded TOTP key (base32)
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


async def user_id_of(app: Quart, name: str) -> int:
    async with app.app_context(), db.session() as dbs:
        found = await dbs.scalar(select(User.id).where(User.username == name))
    assert found is not None
    return found


async def seed(app: Quart, name: str, *, totp: bool = True) -> int:
    """A row of ``name``'s in every table a feature keeps per user (logins come from
    real sign-ins); the address ``<name>@example.test``, confirmed. Returns the id."""
    user_id = await user_id_of(app, name)
    now = time.time()
    rows: list[Any] = [
        Device(id=f"{name}-device", user_id=user_id, created_at=now, last_used=now),
        DeviceCode(id=f"{name}-device-code", user_id=user_id, expires_at=now + 300),
        ThrottleCounter(scope="user", key=name, attempts=1, window_end=now + 600, strikes=0),
        ThrottleCounter(
            scope="device", key=f"{name}-device", attempts=1, window_end=now + 600, strikes=0
        ),
        RecoveryCode(user_id=user_id, code_hash=f"{name}-code-hash", created_at=now),
        RecoveryCode(user_id=user_id, code_hash=f"{name}-used", created_at=now, used_at=now),
        PendingLogin(id=f"{name}-pending", user_id=user_id, remember=False, expires_at=now + 60),
        SecondFactorFailure(
            user_id=user_id, at=now - 60, address="192.0.2.7", user_agent=UA, step="sign-in"
        ),
        Passkey(
            user_id=user_id,
            credential_id=f"{name}-credential",
            public_key=b"public key bytes",
            sign_count=3,
            user_handle=name.encode().ljust(16, b"\0"),
            name="Work laptop",
            created_at=now - 3600,
            last_used=now - 60,
        ),
        PasskeyChallenge(
            id=f"{name}-challenge", purpose="register", user_id=user_id, expires_at=now + 60
        ),
        EmailAddress(
            user_id=user_id,
            address=f"{name}@example.test",
            address_key=f"{name}@example.test",
            created_at=now - 7200,
            confirmed_at=now - 7000,
        ),
        MailToken(
            id=f"{name}-token",
            user_id=user_id,
            purpose="reset",
            address=f"{name}@example.test",
            created_at=now,
            expires_at=now + 600,
        ),
        OutboxMessage(
            kind="password-changed",
            user_id=user_id,
            recipient=f"{name}@example.test",
            message="Subject: pending\n\npending",
            created_at=now,
            attempts=0,
            next_attempt_at=now + 600,
        ),
    ]
    if totp:
        rows.append(
            TotpFactor(
                user_id=user_id, secret=SECRET, created_at=now - 7200, confirmed_at=now - 7000
            )
        )
    async with app.app_context(), db.session() as dbs:
        dbs.add_all(rows)
        await dbs.commit()
    return user_id


async def owned(settings: dict[str, Any], user_id: int) -> dict[str, int]:
    """How many rows of ``user_id``'s each table holds."""
    counts = {}
    for table in OWNED:
        sql = f"SELECT count(*) FROM {table} WHERE user_id = {user_id}"
        counts[table] = int((await aquery(settings, sql))[0][0])
    return counts


async def counters(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """The throttle's counters of usernames and devices (not of addresses)."""
    rows = await aquery(settings, "SELECT scope, key FROM throttle_counters ORDER BY key")
    return [(scope, key) for scope, key in rows if scope in ("user", "device")]
