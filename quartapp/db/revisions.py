"""The code's and the database's schema revisions, read without Alembic.

A served worker only compares the two: at start (a production worker refuses a schema
behind the code) and on ``/healthz``. Asking Alembic cost every worker about 11 MiB and
a tenth of a second of CPU at start: Alembic with Mako and Pygments, then each script in
``migrations/versions`` run as a module, only to read two assignments from each. So
this module reads those assignments from the files' syntax trees, and the database's
revision from Alembic's version table with one ``SELECT``. Alembic stays the one that
writes both (:mod:`.schema`, the ``db`` commands); tests/db/test_schema.py checks that
the two readings agree.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from sqlalchemy import Column, Connection, MetaData, String, Table, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..settings import ROOT

VERSIONS = ROOT / "migrations" / "versions"
# Alembic's default version table, which env.py keeps.
VERSION_TABLE = "alembic_version"
_VERSIONS = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)))


class RevisionError(Exception):
    """The scripts or the version table hold something this module cannot read."""


@cache
def chain() -> dict[str, str | None]:
    """Each revision in ``migrations/versions`` and the one it revises (None: the first)."""
    found: dict[str, str | None] = {}
    for path in sorted(VERSIONS.glob("*.py")):
        assigned = _assignments(path)
        revision = assigned.get("revision")
        if not isinstance(revision, str):
            raise RevisionError(f"{path.name} assigns no revision string")
        down = assigned.get("down_revision")
        if down is not None and not isinstance(down, str):
            # A merge revises several; the history here is one line, so none is expected.
            raise RevisionError(f"{path.name}: down_revision {down!r} is not one revision")
        found[revision] = down
    return found


def _assignments(path: Path) -> dict[str, object]:
    """The module-level ``name = <literal>`` assignments of a script (annotated or not)."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                continue  # not a literal: not one of the two names read here
    return values


@cache
def head() -> str:
    """The newest revision, the one the models describe: the one nothing revises."""
    revised = set(chain().values())
    heads = [revision for revision in chain() if revision not in revised]
    if len(heads) != 1:
        raise RevisionError(f"migrations/versions has {len(heads)} heads: {sorted(heads)}")
    return heads[0]


def known() -> frozenset[str]:
    """Every revision this code has a script for."""
    return frozenset(chain())


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None: no migrations applied)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(select(_VERSIONS.c.version_num)).all()
    if len(rows) > 1:
        found = sorted(str(version) for (version,) in rows)
        raise RevisionError(f"the database is at several revisions at once: {found}")
    return str(rows[0][0]) if rows else None


async def read_revision(connection: AsyncConnection) -> str | None:
    """The database's revision on an open connection: for ``/healthz`` and the start check."""
    return await connection.run_sync(current_revision)
