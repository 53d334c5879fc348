"""The WebAuthn ceremonies, through py_webauthn: options out, responses checked.

Nothing here touches the database or the request: the views pass in the relying
party (:func:`relying_party`) and the stored credential, and get back options to send
or a verified result. Every way a response can be wrong ends in :class:`Refused`,
whose message is safe to show, so no input reaches a 500.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# py_webauthn, with cryptography, cbor2 and pyOpenSSL under it, is about 20 MiB of a
# worker: it is imported by the functions that use it, on the first passkey ceremony.
if TYPE_CHECKING:
    from webauthn.helpers.structs import AuthenticationCredential, RegistrationCredential

from ..web.hosts import HOST
from .models import CREDENTIAL_ID_COLUMN
from .settings import PasskeySettings

# How long a ceremony may take, from options to response: the challenge's lifetime,
# and the timeout the browser is told.
CHALLENGE_LIFETIME = 300
RP_NAME = "quartapp"
# What the browser is told. Messages a person may see, so they say what to do.
NEEDS_NAME = "Passkeys need the site's name in the address bar, not an IP address."
OUTSIDE_RP_ID = "Passkeys are not offered at this address. Use the site's usual address."
MALFORMED = "The passkey's answer could not be read. Please try again."
NOT_VERIFIED = "The passkey could not be verified. Please try again."


class Refused(Exception):
    """A ceremony that cannot go on: the message says why, for the person and the log."""

    def __init__(self, message: str, reason: str = "invalid", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class RelyingParty:
    """Whom the credentials are for (the RP ID) and the origin responses must come from."""

    rp_id: str
    origin: str


def relying_party(config: PasskeySettings, scheme: str, host: str) -> RelyingParty:
    """The RP ID and expected origin for a request to ``scheme://host``.

    The host has passed the host check, so it is one of ``TRUSTED_HOSTS``. The RP ID
    is ``WEBAUTHN_RP_ID`` when set, else the host's name; the host must be the RP ID
    or a subdomain of it, as browsers require. An IP address can never be an RP ID.
    """
    host = host.lower()
    match = HOST.fullmatch(host)
    if match is None:
        raise Refused(OUTSIDE_RP_ID, "bad host")
    name = match["name"]
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        raise Refused(NEEDS_NAME, "ip address")
    rp_id = config.webauthn_rp_id or name
    if name != rp_id and not name.endswith(f".{rp_id}"):
        raise Refused(OUTSIDE_RP_ID, "outside rp id")
    return RelyingParty(rp_id, f"{scheme}://{host}")


def challenge_key(challenge: bytes) -> str:
    """The stored form of a challenge: the key its row is found by again."""
    return hashlib.sha256(challenge).hexdigest()


def registration_options(
    party: RelyingParty,
    *,
    username: str,
    user_handle: bytes,
    existing: Sequence[str],
    challenge: bytes,
) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``, as JSON-ready data.

    A discoverable credential (resident key required: signing in names no one first),
    with user verification required, and none of the user's existing credentials, so
    one authenticator does not hold two passkeys for one account.
    """
    from webauthn import generate_registration_options
    from webauthn.helpers import options_to_json_dict
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    options = generate_registration_options(
        rp_id=party.rp_id,
        rp_name=RP_NAME,
        user_name=username,
        user_id=user_handle,
        challenge=challenge,
        timeout=CHALLENGE_LIFETIME * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=_decode(credential_id)) for credential_id in existing
        ],
    )
    return options_to_json_dict(options)


def authentication_options(
    party: RelyingParty, *, challenge: bytes, allowed: Sequence[str] = ()
) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()``: user verification required.

    For a sign-in ``allowed`` is empty, so the authenticator offers the passkeys it
    holds for this site (discoverable credentials); to confirm a login it lists the
    user's own.
    """
    from webauthn import generate_authentication_options
    from webauthn.helpers import options_to_json_dict
    from webauthn.helpers.structs import (
        PublicKeyCredentialDescriptor,
        UserVerificationRequirement,
    )

    options = generate_authentication_options(
        rp_id=party.rp_id,
        challenge=challenge,
        timeout=CHALLENGE_LIFETIME * 1000,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=_decode(credential_id)) for credential_id in allowed
        ],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json_dict(options)


def _decode(credential_id: str) -> bytes:
    return base64url_to_bytes(credential_id)


def base64url_to_bytes(text: str) -> bytes:
    """Unpadded base64url to bytes, as WebAuthn writes ids and challenges."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bytes_to_base64url(data: bytes) -> str:
    """Bytes to unpadded base64url, as WebAuthn writes ids and challenges."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def parse_registration(data: object) -> RegistrationCredential:
    """A registration response from its JSON form; :class:`Refused` if malformed."""
    from webauthn.helpers import parse_registration_credential_json
    from webauthn.helpers.exceptions import WebAuthnException

    if not isinstance(data, dict):
        raise Refused(MALFORMED, "malformed")
    try:
        return parse_registration_credential_json(data)
    except (WebAuthnException, ValueError, TypeError) as error:
        raise Refused(MALFORMED, "malformed") from error


def parse_assertion(data: object) -> AuthenticationCredential:
    """An assertion from its JSON form; :class:`Refused` if malformed."""
    from webauthn.helpers import parse_authentication_credential_json
    from webauthn.helpers.exceptions import WebAuthnException

    if not isinstance(data, dict):
        raise Refused(MALFORMED, "malformed")
    try:
        credential = parse_authentication_credential_json(data)
    except (WebAuthnException, ValueError, TypeError) as error:
        raise Refused(MALFORMED, "malformed") from error
    # The id is looked up before anything is verified: only the base64url of rawId,
    # of a length the column holds, ever reaches the database (PostgreSQL refuses NUL).
    if len(credential.id) > CREDENTIAL_ID_COLUMN or credential.id != bytes_to_base64url(
        credential.raw_id
    ):
        raise Refused(MALFORMED, "malformed")
    return credential


def challenge_of(credential: RegistrationCredential | AuthenticationCredential) -> bytes:
    """The challenge a response answers, read from its (not yet verified) client data.

    Only to find the challenge's row: verification then checks it was signed over.
    """
    from webauthn.helpers import parse_client_data_json
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        client_data = parse_client_data_json(credential.response.client_data_json)
    except (WebAuthnException, ValueError, TypeError) as error:
        raise Refused(MALFORMED, "malformed") from error
    return bytes(client_data.challenge)


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what is stored for the passkey."""

    credential_id: str
    public_key: bytes
    sign_count: int


def verify_registration(
    party: RelyingParty, credential: RegistrationCredential, challenge: bytes
) -> NewCredential:
    """Check a registration: challenge, origin, RP ID, user presence and verification,
    that the id named is the attested one, and that it was not made across origins."""
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.rp_id,
            expected_origin=party.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        raise Refused(NOT_VERIFIED, f"registration: {error}"[:200]) from error
    # The id the authenticator attested to, not the one the client named: a credential
    # stored under another id could never sign in, or could stand in for someone's.
    attested = bytes_to_base64url(verified.credential_id)
    if attested != credential.id or len(attested) > CREDENTIAL_ID_COLUMN:
        raise Refused(NOT_VERIFIED, "registration: credential id is not the attested one")
    refuse_cross_origin(credential)
    return NewCredential(attested, verified.credential_public_key, verified.sign_count)


def refuse_cross_origin(credential: RegistrationCredential | AuthenticationCredential) -> None:
    """Refuse an answer made in a frame of another site (clientData ``crossOrigin``).

    The origin is ours either way; a page of ours never frames itself (the headers
    forbid it), so an answer made across origins was asked for by someone else.
    """
    from webauthn.helpers import parse_client_data_json
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        client_data = parse_client_data_json(credential.response.client_data_json)
    except (WebAuthnException, ValueError, TypeError) as error:
        raise Refused(MALFORMED, "malformed") from error
    if client_data.cross_origin:
        raise Refused(NOT_VERIFIED, "cross origin")


def verify_assertion(
    party: RelyingParty,
    credential: AuthenticationCredential,
    challenge: bytes,
    public_key: bytes,
) -> int:
    """Check an assertion's signature, challenge, origin, RP ID and user verification,
    and that it was not made across origins.

    Returns the signature count it carries. The count is not compared here (the
    library would refuse a clone with the same words as a bad signature): the caller
    compares it with the stored one, once the signature is known to be genuine.
    """
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=party.rp_id,
            expected_origin=party.origin,
            credential_public_key=public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as error:
        raise Refused(NOT_VERIFIED, f"assertion: {error}"[:200]) from error
    refuse_cross_origin(credential)
    return int(verified.new_sign_count)


def is_clone(stored: int, received: int) -> bool:
    """Whether a signature count says the credential was copied (WebAuthn 6.1.1).

    An authenticator that keeps no count sends 0 every time; one that does must send
    more than last time. A count that did not go up means two copies are signing.
    """
    return (stored > 0 or received > 0) and received <= stored
