"""A real PostgreSQL for the tests: Debian's binaries, run by ``pg_ctl`` in a temporary folder.

pytest-postgresql does the same, but it runs ``initdb`` as the current user, and
PostgreSQL refuses to run as root, which is how CI runs. So this module starts the
server itself, as the ``postgres`` system user when we are root, and hands each test
an empty database cloned from a template that already carries the migrations.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from tests.support.ports import free_port

INSTALL_HINT = "PostgreSQL is not installed: apt-get install postgresql"
SUPERUSER = "postgres"


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: on PATH, or Debian's newest."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


@dataclass
class PostgresServer:
    """One running PostgreSQL cluster on 127.0.0.1, trusting local connections."""

    bin_dir: Path
    root: Path
    port: int = field(default_factory=free_port)
    _names: Iterator[int] = field(default_factory=count)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *command: str) -> None:
        # As root, run the server as the `postgres` user that Debian's package creates.
        user = SUPERUSER if os.geteuid() == 0 else None
        subprocess.run(command, check=True, capture_output=True, user=user, timeout=120)

    def start(self, *settings: str) -> None:
        """initdb (first time only) and start; ``settings`` are extra ``-c`` options."""
        if not self.data.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                account = pwd.getpwnam(SUPERUSER)
                os.chown(self.root, account.pw_uid, account.pw_gid)
            self._run(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
        options = [
            f"-p {self.port}",
            f"-k {self.root}",
            "-c listen_addresses=127.0.0.1",
            # Test data need not survive a crash: skip the disk flushes.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            *(f"-c {setting}" for setting in settings),
        ]
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` to pull the plug)."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL, the form a PaaS hands out."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql, for setting up what the app's own code must not do."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout

    def new_database_name(self) -> str:
        return f"test_{os.getpid()}_{next(self._names)}"


def make_server(bin_dir: Path) -> PostgresServer:
    """A server in a fresh temporary folder that the server's user may write to."""
    root = Path(tempfile.mkdtemp(prefix="quartapp-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the server runs as another user
    return PostgresServer(bin_dir, root / "cluster")


@contextlib.contextmanager
def running_server(bin_dir: Path) -> Iterator[PostgresServer]:
    """A started server of its own, stopped and its folder removed afterwards."""
    server = make_server(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop("immediate")
        shutil.rmtree(server.root.parent, ignore_errors=True)


PGBOUNCER_HINT = "PgBouncer is not installed: apt-get install pgbouncer"


def find_pgbouncer() -> Path | None:
    """Debian's ``pgbouncer`` binary (in /usr/sbin, often off a user's PATH)."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    return Path(found) if found else None


@dataclass
class PgBouncer:
    """A PgBouncer in transaction pooling mode in front of ``server``, on 127.0.0.1.

    Like the server, it refuses to run as root, so as root it runs as ``postgres``.
    """

    binary: Path
    server: PostgresServer
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.server.root.parent / "pgbouncer"

    def start(self, timeout: float = 30) -> None:
        """Write its settings, start it and return once it accepts connections."""
        self.root.mkdir(exist_ok=True)
        (self.root / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            f"admin_users = {SUPERUSER}\n"
            # What a PaaS's PgBouncer does: a server connection per transaction.
            "pool_mode = transaction\n"
            "max_client_conn = 200\n"
            "default_pool_size = 10\n"
            "stats_period = 1\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        user = SUPERUSER if os.geteuid() == 0 else None
        if user is not None:
            account = pwd.getpwnam(SUPERUSER)
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.process = subprocess.Popen(
            [str(self.binary), str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=user,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"PgBouncer did not start:\n{text}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def url(self, database: str) -> str:
        """The URL an app behind this PgBouncer is given."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def show(self, what: str) -> list[list[str]]:
        """Rows of the admin console's ``SHOW <what>`` (e.g. ``STATS``), header first."""
        result = subprocess.run(
            [
                str(self.server.bin_dir / "psql"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "pgbouncer"),
                *("-A", "-F", "\t", "-P", "footer=off", "-c", f"SHOW {what}"),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return [line.split("\t") for line in result.stdout.splitlines()]
