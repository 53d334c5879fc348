"""The package's shape: importing ``quartapp`` is cheap, and the keys tool needs no venv."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.utils import load_application

import quartapp
from quartapp.asgi import LazyApp

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30

# Prints the modules that importing ``quartapp`` added that are not the standard library.
IMPORT_QUARTAPP = """
import json, sys
before = set(sys.modules)
import quartapp
added = set(sys.modules) - before
print(json.dumps(sorted(m for m in added if m.split(".")[0] not in sys.stdlib_module_names)))
"""
# Runs ``python -m quartapp.keys --print`` in this process, then lists what it imported.
RUN_KEYS = """
import json, runpy, sys
sys.argv = ["quartapp.keys", "--print"]
try:
    runpy.run_module("quartapp.keys", run_name="__main__", alter_sys=True)
except SystemExit as stop:
    assert not stop.code, stop.code
known = {*sys.stdlib_module_names, "__main__"}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] not in known)))
"""


def python(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run this interpreter from the repository root, as a newcomer would."""
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_importing_quartapp_imports_only_the_standard_library() -> None:
    # In the venv, where every framework could be imported: none is.
    result = python("-c", IMPORT_QUARTAPP)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["quartapp", "quartapp.asgi"]


def test_keys_print_runs_on_a_bare_python() -> None:
    # -S leaves out site-packages (the venv's included) and -E the environment: what is
    # left is a plain Python and the repository, as with a system python3 outside the venv.
    result = python("-S", "-E", "-m", "quartapp.keys", "--print")

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"SECRET_KEY=[A-Za-z0-9_-]{43}\n", result.stdout)
    assert result.stderr == ""


def test_keys_tool_imports_no_third_party_module() -> None:
    result = python("-S", "-E", "-c", RUN_KEYS)

    assert result.returncode == 0, result.stderr
    *printed, modules = result.stdout.splitlines()
    assert [line.split("=")[0] for line in printed] == ["SECRET_KEY"]
    assert json.loads(modules) == [
        "quartapp",
        "quartapp.asgi",
        "quartapp.files",
        "quartapp.keys",
        "quartapp.keys.command",
        "quartapp.keys.retire",
        "quartapp.keys.toml",
    ]


def test_importing_quartapp_builds_no_app() -> None:
    assert isinstance(quartapp.app, LazyApp)
    assert quartapp.app._app is None


def test_hypercorn_finds_the_lazy_app_by_its_module_path() -> None:
    # hypercorn looks ``app`` up in the module's namespace (not with getattr), so the
    # name must be bound there, not only reachable through a module __getattr__.
    wrapper = load_application("quartapp:app", wsgi_max_body_size=2**16)

    assert isinstance(wrapper, ASGIWrapper)
    assert wrapper.app is quartapp.app
    assert quartapp.app._app is None


def test_python_version_file_is_the_floor_the_project_declares_and_locks_for() -> None:
    # Buildpacks (Heroku's, Fly's, Render's) pick the interpreter from .python-version;
    # it must be one the project supports, and the one its lock files were resolved for.
    pinned = (ROOT / ".python-version").read_text()
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    locked = set(re.findall(r"--python-version (\S+)", (ROOT / "Makefile").read_text()))

    assert re.fullmatch(r"3\.\d+\n", pinned), "one line, major.minor: the newest patch release"
    assert declared == f">={pinned.strip()}"
    assert locked == {pinned.strip()}


# Libraries a worker imports on first use only: together about a third of a worker.
# Alembic only migrates: a worker reads the revisions without it (quartapp/db/revisions.py),
# in production to check the schema at start and in development to find it at the head.
HEAVY = ("zxcvbn", "webauthn", "segno", "asyncpg", "cryptography", "alembic")
# Builds the app and serves the pages every visitor sees, then lists the HEAVY
# libraries imported so far.
SERVE_PAGES = """
import asyncio, json, sys
import quartapp

app = quartapp.create_app()

async def serve():
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for path in ("/", "/login", "/healthz"):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code)

asyncio.run(serve())
print(json.dumps([name for name in HEAVY if name in sys.modules]))
"""
# The web line's parent, up to the point where it starts hypercorn's workers: which
# frameworks it has imported.
SERVE_PARENT = """
import json, sys
import hypercorn.__main__
from quartapp import serve, supervisor

refusal, metrics_enabled = serve.checked_settings()
assert refusal is None, refusal
print(json.dumps([name for name in FRAMEWORKS if name in sys.modules]))
"""
FRAMEWORKS = ("quart", "flask", "jinja2", "sqlalchemy", "wtforms", *HEAVY)


def app_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "QUARTAPP_INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quartapp.db'}",
        "SECRET_KEY": "k" * 43,
    }


def imported_after(code: str, tmp_path: Path, **env: str) -> list[str]:
    """Run ``code`` in a fresh Python with the app's environment (and ``env``); the names
    it printed last."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**app_env(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names: list[str] = json.loads(result.stdout.splitlines()[-1])
    return names


def test_serving_the_pages_every_visitor_sees_imports_no_heavy_library(
    tmp_path: Path, served_sqlite_template: Path
) -> None:
    # A start on a database that has an account already, as every worker's after the
    # first: on an empty one the app makes the initial admin, whose generated password
    # is rated, which takes zxcvbn, as any new password does.
    shutil.copyfile(served_sqlite_template, tmp_path / "quartapp.db")

    assert imported_after(f"HEAVY = {HEAVY!r}\n{SERVE_PAGES}", tmp_path) == []


def test_a_production_worker_checks_the_schema_and_serves_without_a_heavy_library(
    tmp_path: Path, served_sqlite_template: Path
) -> None:
    # Production checks the database's revision at start instead of migrating.
    shutil.copyfile(served_sqlite_template, tmp_path / "quartapp.db")
    production = {
        "QUARTAPP_ENV": "production",
        "QUARTAPP_TRUSTED_HOSTS": '["localhost"]',
        "QUARTAPP_HTTPS_REDIRECT": "false",
    }

    assert imported_after(f"HEAVY = {HEAVY!r}\n{SERVE_PAGES}", tmp_path, **production) == []


def test_the_web_lines_parent_checks_the_settings_without_importing_the_app(
    tmp_path: Path,
) -> None:
    assert imported_after(f"FRAMEWORKS = {FRAMEWORKS!r}\n{SERVE_PARENT}", tmp_path) == []
