"""The passkeys' tables: each user's registered credentials, and pending challenges.

A passkey row holds what verifying an assertion needs (the credential's id and COSE
public key, its last signature count) and what the account page shows (a name, when
it was added and last used). A challenge row is one ceremony of a signed-in user in
progress (registering, confirming): keyed by the SHA-256 of its challenge, used once
(deleted as it is checked) and dead after a few minutes. A sign-in's challenge lives in
the browser's session instead, and its row ("login") records its use, once its answer
verified, so the same answer is not taken twice; it goes when the challenge would have
expired. Times are Unix seconds, as on ``logins``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base

__all__ = ["CREDENTIAL_ID_COLUMN", "PASSKEY_NAME_COLUMN", "Passkey", "PasskeyChallenge"]

# A credential id is at most 1023 bytes (WebAuthn level 3): 1364 characters of base64url.
CREDENTIAL_ID_COLUMN = 1364
PASSKEY_NAME_COLUMN = 64


class Passkey(Base):
    """A WebAuthn credential registered by a user: a way to sign in with no password."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # base64url, as the browser names it in an assertion: looked up by it, so unique.
    credential_id: Mapped[str] = mapped_column(String(CREDENTIAL_ID_COLUMN), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's counter is 32 bits unsigned, which an INTEGER cannot hold.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # The WebAuthn user handle the credential was made for: random, the same for all of
    # one user's passkeys, so an authenticator keeps one passkey per account.
    user_handle: Mapped[bytes] = mapped_column(LargeBinary(64))
    name: Mapped[str] = mapped_column(String(PASSKEY_NAME_COLUMN))
    created_at: Mapped[float] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)


class PasskeyChallenge(Base):
    """A challenge handed to a browser for one ceremony, until it is used or expires."""

    __tablename__ = "passkey_challenges"

    # The SHA-256 of the challenge, hex: found again from the response's clientDataJSON.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "register", "login" or "confirm": a challenge serves the ceremony it was made for.
    purpose: Mapped[str] = mapped_column(String(16))
    # Whose ceremony it is (register, confirm), or whose passkey answered (login).
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    # A registration's user handle, sent in its options: the response does not repeat it.
    user_handle: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    # Unused, always NULL: it held a sign-in asker's network when sign-in challenges
    # were rows. Kept rather than dropped by a migration of its own.
    network: Mapped[str | None] = mapped_column(String(64), index=True)
