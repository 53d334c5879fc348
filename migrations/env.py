"""Alembic's entry point for quartapp: run the migrations on the connection we are given.

quartapp drives Alembic itself (``quart --app quartapp db upgrade``, see
``quartapp/db/schema.py``), which opens the connection, takes the migration lock and passes
the connection in; so this file never reads a URL or opens an engine of its own.
"""

from __future__ import annotations

from alembic import context

from quartapp import load_models
from quartapp.db import Base

load_models()  # every feature's tables, so the comparison sees the whole schema

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise SystemExit(
        "run migrations through quartapp: .venv/bin/quart --app quartapp db upgrade "
        "(or db downgrade, db current)"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite can change a table only by rebuilding it; batch mode does that for us.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
