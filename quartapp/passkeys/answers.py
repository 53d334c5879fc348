"""What the passkey endpoints share: reading a JSON request, and answering in JSON.

static/passkeys.js posts JSON (its CSRF token in the ``X-CSRFToken`` header) and reads
JSON back: ``{"error": "..."}`` with a 4xx, or what it needs next. Every malformed
body is a 4xx here (read by :mod:`quartapp.web.json_body`), before any view looks at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quart import jsonify, request
from quart.wrappers import Response

from ..web.json_body import BadBody, read_object
from . import settings
from .ceremony import Refused, RelyingParty, relying_party


class BadRequest(Refused):
    """A request no page of ours sends: not JSON, or JSON of the wrong shape."""


def answer(status: int = 200, **fields: object) -> Response:
    """A JSON answer with ``fields``."""
    response = jsonify(fields)
    response.status_code = status
    return response


def refusal(error: Refused) -> Response:
    """The JSON answer for a refused ceremony."""
    return answer(error.status, error=error.message)


async def body() -> Mapping[str, Any]:
    """The request's JSON object; :class:`BadRequest` (400, 413 or 415) for anything else."""
    try:
        return await read_object()
    except BadBody as error:
        # One reason for every unreadable body: the views leave such requests out of
        # the audit log, as no page of ours sends them.
        raise BadRequest(error.message, "not json", status=error.status) from None


def flag(data: Mapping[str, Any], name: str) -> bool:
    """An optional true/false field of a JSON body."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false.", "bad field")
    return value


def party() -> RelyingParty:
    """The relying party of this request (its host has passed the host check)."""
    return relying_party(settings.current(), request.scheme, request.host)
