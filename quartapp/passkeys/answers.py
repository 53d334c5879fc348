"""What the passkey endpoints share: reading a JSON request, and answering in JSON.

static/passkeys.js posts JSON (its CSRF token in the ``X-CSRFToken`` header) and reads
JSON back: ``{"error": "..."}`` with a 4xx, or what it needs next. Every malformed
body is a 4xx here, before any view looks at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from quart import current_app, jsonify, request
from quart.wrappers import Response

from .ceremony import Refused, RelyingParty, relying_party

NOT_JSON = "Send the passkey's answer as JSON."


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
    """The request's JSON object; :class:`BadRequest` (415 or 400) for anything else."""
    if request.mimetype != "application/json":
        raise BadRequest(NOT_JSON, "not json", status=415)
    data = await request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadRequest(NOT_JSON, "not json")
    return data


def flag(data: Mapping[str, Any], name: str) -> bool:
    """An optional true/false field of a JSON body."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false.", "bad field")
    return value


def party() -> RelyingParty:
    """The relying party of this request (its host has passed the host check)."""
    return relying_party(current_app.config, request.scheme, request.host)
