"""A software authenticator for the passkey tests: a real key, real CBOR, real signatures.

It answers the options the app sends as a platform authenticator would: an EC P-256
key made with ``cryptography``, an attestation object of format "none" encoded with
``cbor2``, and assertions signed over authenticatorData + SHA-256(clientDataJSON).
py_webauthn verifies every byte of it, as it would a phone's. Keyword arguments let a
test get one thing wrong on purpose (the origin, the RP ID, the signature, the count,
a ``crossOrigin`` client data).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost"
RP_ID = "localhost"
# authenticatorData flags (WebAuthn 6.1): user present, user verified, attested data.
UP, UV, AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    """base64url without padding, as WebAuthn's JSON forms carry binary."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """The bytes of a base64url string."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def client_data_json(kind: str, options: dict[str, Any], origin: str, cross_origin: bool) -> bytes:
    """The clientDataJSON a browser makes; ``crossOrigin`` only when true, as browsers do."""
    data: dict[str, Any] = {"type": kind, "challenge": options["challenge"], "origin": origin}
    if cross_origin:
        data["crossOrigin"] = True
    return json.dumps(data).encode()


class SoftAuthenticator:
    """One passkey (a discoverable credential) held in memory."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.sign_count = 0
        self.user_handle = b""

    @property
    def id(self) -> str:
        """The credential id, base64url, as the browser names it."""
        return b64(self.credential_id)

    def cose_key(self) -> bytes:
        """The public key as COSE_Key (EC2, ES256, P-256)."""
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def authenticator_data(self, rp_id: str, flags: int, *, attested: bool = False) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest()
        data += bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            data += bytes(16)  # AAGUID: none, as with attestation "none"
            data += len(self.credential_id).to_bytes(2, "big") + self.credential_id
            data += self.cose_key()
        return data

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        verified: bool = True,
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """Answer ``navigator.credentials.create()`` options with a new credential."""
        self.user_handle = unb64(options["user"]["id"])
        client_data = client_data_json("webauthn.create", options, origin, cross_origin)
        flags = UP | AT | (UV if verified else 0)
        auth_data = self.authenticator_data(rp_id or options["rp"]["id"], flags, attested=True)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str = ORIGIN,
        rp_id: str | None = None,
        verified: bool = True,
        step: int = 1,
        bad_signature: bool = False,
        cross_origin: bool = False,
    ) -> dict[str, Any]:
        """Answer ``navigator.credentials.get()`` options with a signed assertion.

        ``step``: how far the signature count moves (0 for an authenticator that keeps
        none, or a copy that has not caught up).
        """
        self.sign_count += step
        client_data = client_data_json("webauthn.get", options, origin, cross_origin)
        flags = UP | (UV if verified else 0)
        auth_data = self.authenticator_data(rp_id or options["rpId"], flags)
        signed = auth_data + hashlib.sha256(client_data).digest()
        if bad_signature:
            signed += b"tampered"
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": b64(self.user_handle),
            },
        }
