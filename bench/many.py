"""Many users at once: a thousand logins, each request carrying the next one's cookie.

The other ``/hello`` scenarios replay one user's cookie, so one login row stays hot in
every cache. Here each app gets :data:`USERS` more accounts, all with the password of
the bench user the app already has: its row is copied, hash and all, by one
``INSERT ... SELECT`` (making a thousand argon2 hashes would take minutes and measure
nothing). Then every one of them signs in **through the login form**, as a browser
would (``GET /login``, its CSRF token, ``POST /login``, then the first ``/hello``), a
few at a time, and wrk sends each request with the next user's cookie (``wrk.lua``
reads them from ``WRK_COOKIES``, one ``Cookie`` header a line).

Runs last :data:`SECONDS` by default, longer than ``last_seen``'s minute, so that every
login's ``last_seen`` falls due, and is written, within the run.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import pg, servers
from bench.servers import BenchError, Server

USERS = 1000
SECONDS = 90
PREFIX = "many"
# Sign-ins at once: enough to keep both cores hashing, and within quartapp's hashing
# line (more are turned away with a 503 while it is full).
SIGNING_IN = 2
SQLITE = "many"


def scenario(delay_ms: int | None) -> str:
    """The report's name for the scenario: SQLite (None) or PostgreSQL at ``delay_ms``."""
    return SQLITE if delay_ms is None else f"many-pg+{delay_ms}ms"


def title(delay_ms: int | None) -> str:
    where = "SQLite" if delay_ms is None else f"PostgreSQL +{delay_ms} ms"
    return f"many users, {where}, /hello"


def usernames(count: int = USERS) -> list[str]:
    return [f"{PREFIX}{number}" for number in range(1, count + 1)]


def copy_user(source: str, count: int, *, created_at: bool) -> str:
    """SQL that adds ``count`` users named many1... with ``source``'s password hash.

    ``created_at``: the table has that column, without a server default (quartapp's).
    """
    columns = "username, password_hash" + (", created_at" if created_at else "")
    copied = "password_hash" + (", created_at" if created_at else "")
    # The bench's own names and a count: nothing here comes from outside.
    where = f"users.username = '{source}'"
    picked = f"SELECT '{PREFIX}' || n.i, {copied} FROM n, users WHERE {where}"  # noqa: S608
    numbers = f"n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})"  # noqa: S608
    return f"WITH RECURSIVE {numbers} INSERT INTO users ({columns}) {picked}"


def seed_sqlite(path: Path, source: str, *, created_at: bool, count: int = USERS) -> None:
    """Add the users to a SQLite file (the server may be running: one short write)."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        with connection:
            connection.execute(copy_user(source, count, created_at=created_at))
    finally:
        connection.close()


def seed_postgres(cluster: pg.Cluster, app: str, source: str, *, count: int = USERS) -> None:
    """Add the users to ``app``'s database in the bench's PostgreSQL cluster."""
    sql = copy_user(source, count, created_at=app == pg.QUARTAPP_PG)
    cluster.postgres.psql(sql, pg.DATABASES[app])


def sign_in_all(
    server: Server, password: str, names: Sequence[str], folder: Path
) -> tuple[Path, float]:
    """Sign every user in through the form; the cookie file for wrk and the seconds it took."""
    started = time.monotonic()

    def sign_in(name: str) -> str:
        return servers.cookie_header(servers.log_in(server, name, password))

    try:
        with ThreadPoolExecutor(SIGNING_IN) as pool:
            headers = list(pool.map(sign_in, names))
    except BenchError as error:
        raise BenchError(f"{error}\n{server.name}'s log:\n{server.log_tail()}") from None
    if len(set(headers)) != len(names):
        raise BenchError(f"{server.name}: {len(names)} sign-ins gave duplicate cookies")
    path = folder / f"{server.name}.cookies"
    path.write_text("\n".join(headers) + "\n")
    return path, time.monotonic() - started
