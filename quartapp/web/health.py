"""``GET /healthz`` for the platform's router and uptime checks."""

from __future__ import annotations

import asyncio
import logging

from quart import Blueprint
from quart.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from ..db import db, schema
from .errors import RETRY_AFTER

bp = Blueprint("health", __name__)
log = logging.getLogger("quartapp.health")  # the pre-move name, kept for log filters
PING_TIMEOUT = 3.0


@bp.get("/healthz")
async def healthz() -> ResponseReturnValue:
    """200 with the schema's revision when the database answers, 503 when it does not.

    ``revision`` is the database's Alembic revision and ``head`` this code's newest, so
    a deploy can see that its release step ran. Reading the revision is the query that
    proves the database answers (no separate ping).
    """
    try:
        # A router gives up after a few seconds; answer before it does.
        revision = await asyncio.wait_for(db.store.read(schema.read_revision), PING_TIMEOUT)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("health check failed: %s", error)
        body = {"status": "unavailable", "database": "down"}
        return body, 503, {"Retry-After": str(RETRY_AFTER)}
    return {"status": "ok", "database": "up", "revision": revision, "head": schema.head()}, 200
