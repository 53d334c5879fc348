"""``GET /healthz`` for the platform's router and uptime checks."""

from __future__ import annotations

import asyncio
import logging

from quart import Blueprint
from quart.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from ..db import db

bp = Blueprint("health", __name__)
log = logging.getLogger("quartapp.health")  # the pre-move name, kept for log filters
PING_TIMEOUT = 3.0


@bp.get("/healthz")
async def healthz() -> ResponseReturnValue:
    """200 when the database answers a query, 503 when it does not."""
    try:
        # A router gives up after a few seconds; answer before it does.
        await asyncio.wait_for(db.store.ping(), timeout=PING_TIMEOUT)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        log.warning("health check failed: %s", error)
        return {"status": "unavailable", "database": "down"}, 503
    return {"status": "ok", "database": "up"}, 200
