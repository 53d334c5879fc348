"""One production server shared by the tests of a module, each on an account of its own.

The conftest's ``start`` gives every test its own database and servers: right when the
tests' state would meet (a lockout, a count in the logs), but every server costs a
start and a stop. Where the tests only need alice's own state to be theirs, a module
starts one server per database (``shared_server``) and each test logs in as a fresh
user (``new_user``) with alice's password.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from tests.conftest import query, served_database
from tests.support.server import Server, free_port, hypercorn_command, running, server_env


@dataclass(frozen=True)
class Shared:
    """A started server and the URL of its database."""

    server: Server
    database_url: str

    def new_user(self) -> str:
        """A new account with alice's password hash (so PASSWORD logs in), and its name."""
        name = f"user{secrets.token_hex(4)}"
        query(
            {"DATABASE_URL": self.database_url},
            "INSERT INTO users (username, password_hash, created_at) "
            f"SELECT '{name}', password_hash, created_at FROM users WHERE username = 'alice'",
        )
        return name


@contextmanager
def shared_server(
    request: pytest.FixtureRequest, database: str, workers: int = 2, **settings: str
) -> Iterator[Shared]:
    """A production server (as the conftest's ``start`` makes them) for a whole module."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp("shared")
    with ExitStack() as stack:
        url = stack.enter_context(served_database(request, database, directory))
        env = server_env(
            directory / "instance",
            QUARTAPP_ENV="production",
            DATABASE_URL=url,
            QUARTAPP_TRUSTED_HOSTS='["127.0.0.1"]',
            **{
                "SECRET_KEY": secrets.token_urlsafe(32),
                "QUARTAPP_SESSION_COOKIE_SECURE": "false",
                **settings,
            },
        )
        port = free_port()
        command = hypercorn_command(port, "--workers", str(workers))
        server = stack.enter_context(running(command, env, port, directory / "logs"))
        server.wait_healthy()
        yield Shared(server, url)
