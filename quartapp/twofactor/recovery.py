"""Recovery codes: ten one-time codes for a user who has lost their authenticator.

Each code is 24 characters from a 32-letter alphabet without look-alikes (no 0/O,
1/I), drawn with ``secrets`` (a CSPRNG, ASVS 6.5.3): 120 bits, far above the 20 that
ASVS 6.5.4 asks of a lookup secret. With 112 bits or more ASVS 6.5.2 allows a plain
hash instead of a slow password hash, since no one can guess through the hashes; so a
code is stored as its SHA-256 (with a context prefix) and found by one indexed lookup,
never by checking ten argon2 hashes per attempt. It is spent by one
``UPDATE ... WHERE used_at IS NULL``: of two requests with the same code, on any
process, one spends it and the other finds it spent (ASVS 6.5.1).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .models import RecoveryCode

COUNT = 10
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
LENGTH = 24  # 24 x 5 bits = 120 bits
GROUP = 4
# Fewer left than this, and the page that shows the count says to make new ones.
FEW = 3
_CONTEXT = b"quartapp.twofactor.recovery-code\0"


def new_code() -> str:
    """One code in its stored form (no dashes)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def format_code(code: str) -> str:
    """A code as shown: groups of four, ``ABCD-EFGH-...``."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize(text: str) -> str | None:
    """A typed code in its stored form (case, spaces and dashes don't matter), or None."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != LENGTH or any(char not in ALPHABET for char in code):
        return None
    return code


def digest(code: str) -> str:
    """The stored form of a code (normalized first)."""
    return hashlib.sha256(_CONTEXT + code.encode()).hexdigest()


async def replace(session: AsyncSession, user_id: int) -> list[str]:
    """Make the user's ten new codes, ending any old ones (no commit); the codes to show."""
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_code() for _ in range(COUNT)]
    now = time.time()
    session.add_all(
        RecoveryCode(user_id=user_id, code_hash=digest(code), created_at=now) for code in codes
    )
    await session.flush()
    return codes


async def use(session: AsyncSession, user_id: int, code: str) -> bool:
    """Spend the code if it is one of the user's unused ones (no commit); whether it was."""
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == digest(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=time.time())
    )
    return bool(getattr(result, "rowcount", 0))


async def remaining(session: AsyncSession, user_id: int) -> int:
    """How many of the user's codes are unused."""
    query = select(func.count()).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
    )
    return int((await session.execute(query)).scalar_one())
