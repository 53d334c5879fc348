"""Tests for the ``quart --app quartapp users ...`` commands and ``init-db``."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from click.testing import Result
from quart import Quart
from quart.testing import QuartCliRunner
from quart.wrappers import Response

from quartapp import create_app
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    SQLITE_ONLY,
    AuthActions,
    add_user,
    body,
    cookie_value,
    csrf_token,
    invoke,
    login_count,
    make_settings,
    replay,
    stored_hash,
    usernames,
)

# The tests marked BOTH_DATABASES are those whose outcome can depend on the database
# (the rule: tests/conftest.py): the list's ORDER BY (a collation), news of a login the
# command ended reaching a warm cache, and the schema. The commands' flows run on
# PostgreSQL in tests/auth/test_flows.py and tests/account/test_delete.py; names are
# checked and lower-cased in Python.

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

ROOT = Path(__file__).parents[2]
NEW_PASSWORD = "a brand new passphrase, also long"
# At the length limits and hard to guess, so only the limits are tested by them.
STRONG_SHORTEST = "k7#Qv9!mZ2@wL4p"
STRONG_LONGEST = ("tangerine velvet oxbow quarry " * 40)[:1024]
REPEATS = 'Repeats like "abcabcabc" are only slightly harder to guess than "abc".'


def verifies(password_hash: str, password: str) -> bool:
    try:
        return PasswordHasher().verify(password_hash, password)
    except VerificationError:
        return False


def create(runner: QuartCliRunner, name: str = "alice", password: str = PASSWORD) -> Result:
    """``users create NAME --password-stdin`` with ``password`` on one line of stdin."""
    args = ["users", "create", "--password-stdin", "--", name]
    return cast(Result, runner.invoke(args=args, input=f"{password}\n"))


def assert_sent_to_login(response: Response) -> None:
    """The response sends the browser to log in, and back to /hello afterwards."""
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert (location.path, parse_qs(location.query)) == ("/login", {"next": ["/hello"]})


def assert_refused(result: Result, message: str) -> None:
    assert (result.exit_code, result.stderr) == (1, f"Error: {message}\n")


# users create


def test_create_reads_the_password_from_stdin(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    result = create(runner, "bob")

    assert (result.exit_code, result.stdout, result.stderr) == (0, "created user 'bob'\n", "")
    assert verifies(stored_hash(settings, "bob"), PASSWORD)


def test_create_stores_the_username_lower_cased(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    result = create(runner, "Bob.Smith@Example")

    assert result.stdout == "created user 'bob.smith@example'\n"
    assert usernames(settings) == ["bob.smith@example"]


@pytest.mark.parametrize(
    "password",
    [f"  {PASSWORD}  ", f"{PASSWORD} ", f"\t{PASSWORD}"],
    ids=["surrounding-spaces", "trailing-space", "leading-tab"],
)
def test_create_keeps_the_password_exactly_as_typed(
    runner: QuartCliRunner, settings: dict[str, Any], password: str
) -> None:
    assert create(runner, "bob", password).exit_code == 0

    password_hash = stored_hash(settings, "bob")
    assert verifies(password_hash, password)
    assert not verifies(password_hash, password.strip())


@pytest.mark.parametrize(
    "password",
    ["Ünïcödé pässwörd ✓ 🔑", STRONG_SHORTEST, STRONG_LONGEST],
    ids=["unicode", "shortest", "longest"],
)
def test_create_accepts_a_password_within_the_policy(
    runner: QuartCliRunner, settings: dict[str, Any], password: str
) -> None:
    assert create(runner, "bob", password).exit_code == 0
    assert verifies(stored_hash(settings, "bob"), password)


def run_in_terminal(
    settings: dict[str, Any], args: list[str], lines: list[str], *, end_input: bool = False
) -> tuple[int, str]:
    """Run ``quart --app quartapp ARGS`` on a real pseudo-terminal, typing ``lines``.

    Each line is typed once the command has asked for it, as a person would; then, if
    ``end_input``, Ctrl-D. Returns the exit status and everything the terminal showed,
    so what was echoed (or not) is visible.
    """
    env = {
        **os.environ,
        "QUARTAPP_INSTANCE_PATH": settings["INSTANCE_PATH"],
        "DATABASE_URL": settings["DATABASE_URL"],
        "SECRET_KEY": settings["SECRET_KEY"],
        "QUARTAPP_ARGON2_MEMORY_COST": str(settings["ARGON2_MEMORY_COST"]),
        "QUARTAPP_ARGON2_TIME_COST": str(settings["ARGON2_TIME_COST"]),
        "QUARTAPP_INITIAL_ADMIN": "false",
    }
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "quart", "--app", "quartapp", *args],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    shown = b""
    prompts = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # EIO: the command has closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            asked = shown.count(b"Password:") + shown.count(b"Repeat for confirmation:")
            if asked > prompts:
                prompts = asked
                if prompts <= len(lines):
                    os.write(controller, lines[prompts - 1].encode() + b"\n")
                elif end_input:
                    os.write(controller, b"\x04")
            if process.poll() is not None and not ready:
                break
        return process.wait(10), shown.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_create_prompts_twice_without_echo_and_again_when_the_confirmation_differs(
    settings: dict[str, Any],
) -> None:
    # One real process for both (each costs a second): the first pair differs, so the
    # command asks twice more; what is typed must never be echoed.
    typed = [PASSWORD, PASSWORD + "x", NEW_PASSWORD, NEW_PASSWORD]

    code, shown = run_in_terminal(settings, ["users", "create", "bob"], typed)

    assert code == 0, shown
    assert "Password:" in shown
    assert "Repeat for confirmation:" in shown
    assert PASSWORD not in shown  # the terminal's echo was off
    assert NEW_PASSWORD not in shown
    assert "The two entered values do not match." in shown
    assert "created user 'bob'" in shown
    assert verifies(stored_hash(settings, "bob"), NEW_PASSWORD)


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_create_gives_up_when_the_input_ends(settings: dict[str, Any]) -> None:
    code, shown = run_in_terminal(
        settings, ["users", "create", "bob"], [PASSWORD, PASSWORD + "x"], end_input=True
    )

    assert code == 1, shown
    assert "Aborted!" in shown
    assert usernames(settings) == []


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
@pytest.mark.parametrize("command", ["create", "set-password"])
def test_no_terminal_and_no_password_stdin_is_one_line_naming_the_flag(
    runner: QuartCliRunner, settings: dict[str, Any], command: str
) -> None:
    if command == "set-password":
        create(runner, "bob")
    # The runner's stdin is not a terminal, as in a PaaS one-off or a CI job.
    result = runner.invoke(args=["users", command, "bob"], input="")

    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: standard input is not a terminal")
    assert f"users {command} NAME --password-stdin" in line
    assert "Aborted!" not in result.output
    assert usernames(settings) == (["bob"] if command == "set-password" else [])


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize("stdin", ["empty", "pipe"])
def test_no_terminal_in_a_real_process_is_one_line_without_a_warning(
    settings: dict[str, Any], stdin: str
) -> None:
    env = {
        **os.environ,
        "QUARTAPP_INSTANCE_PATH": settings["INSTANCE_PATH"],
        "DATABASE_URL": settings["DATABASE_URL"],
        "SECRET_KEY": settings["SECRET_KEY"],
        "QUARTAPP_INITIAL_ADMIN": "false",
    }
    # No controlling terminal either (a new session), as under a PaaS or cron.
    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "users", "create", "bob"],
        cwd=ROOT,
        env=env,
        input=f"{PASSWORD}\n{PASSWORD}\n" if stdin == "pipe" else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: standard input is not a terminal")
    assert "--password-stdin" in line
    assert "GetPassWarning" not in result.stderr
    assert usernames(settings) == []


@pytest.mark.parametrize("name", ["alice", "ALICE", "Alice"])
def test_create_refuses_a_taken_name_in_any_case(
    runner: QuartCliRunner, settings: dict[str, Any], name: str
) -> None:
    create(runner, "alice")
    original = stored_hash(settings)

    result = create(runner, name, NEW_PASSWORD)

    assert_refused(result, "a user named 'alice' already exists")
    assert usernames(settings) == ["alice"]
    assert stored_hash(settings) == original


def test_create_refuses_a_taken_name_before_asking_for_a_password(
    runner: QuartCliRunner,
) -> None:
    create(runner, "alice")

    result = runner.invoke(args=["users", "create", "alice"])

    assert_refused(result, "a user named 'alice' already exists")
    assert "Password" not in result.output


PATTERN_MESSAGE = (
    "the username may use only letters, digits and . _ @ -, and must start with a letter or digit"
)


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the username is empty"),
        ("a" * 65, "the username is longer than 64 characters"),
        ("bob smith", PATTERN_MESSAGE),
        (" bob", PATTERN_MESSAGE),
        ("-bob", PATTERN_MESSAGE),
        (".bob", PATTERN_MESSAGE),
        ("bob/../x", PATTERN_MESSAGE),
        ("bob\n", PATTERN_MESSAGE),
        ("böb", PATTERN_MESSAGE),
        ("bоb", PATTERN_MESSAGE),  # noqa: RUF001 -- Cyrillic o, a look-alike
    ],
    ids=[
        "empty",
        "too-long",
        "space",
        "leading-space",
        "leading-dash",
        "leading-dot",
        "slash",
        "newline",
        "accent",
        "look-alike",
    ],
)
def test_create_refuses_an_invalid_name(
    runner: QuartCliRunner, settings: dict[str, Any], name: str, message: str
) -> None:
    result = create(runner, name)

    assert_refused(result, message)
    assert usernames(settings) == []


def test_create_accepts_a_name_of_the_longest_length(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    assert create(runner, "a" * 64).exit_code == 0
    assert usernames(settings) == ["a" * 64]


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "the password is empty"),
        (" " * 20, "the password is empty"),
        ("x" * 14, "the password is shorter than 15 characters"),
        ("x" * 1025, "the password is longer than 1024 characters"),
        ("passwordpassword", f"the password is too easy to guess: {REPEATS}"),
    ],
    ids=["empty", "all-spaces", "too-short", "too-long", "common"],
)
def test_create_refuses_a_password_against_the_policy(
    runner: QuartCliRunner, settings: dict[str, Any], password: str, message: str
) -> None:
    result = create(runner, "bob", password)

    assert_refused(result, message)
    assert usernames(settings) == []


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
def test_create_refuses_a_password_made_of_the_username(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    # Strong for anyone else: zxcvbn knows the username only because it is told.
    assert create(runner, "someone", "grozbultarkenvy1").exit_code == 0

    result = create(runner, "grozbultarkenvy", "grozbultarkenvy1")

    assert (result.exit_code, result.stderr.count("\n")) == (1, 1)
    assert result.stderr.startswith("Error: the password is too easy to guess: ")
    assert usernames(settings) == ["someone"]


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
def test_create_refuses_empty_stdin(runner: QuartCliRunner, settings: dict[str, Any]) -> None:
    result = runner.invoke(args=["users", "create", "bob", "--password-stdin"], input="")

    assert_refused(result, "the password is empty")
    assert usernames(settings) == []


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
def test_create_refuses_a_password_that_is_not_utf8(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    typed = PASSWORD.encode() + b"\xff\n"

    result = runner.invoke(args=["users", "create", "bob", "--password-stdin"], input=typed)

    assert_refused(result, "the password is not valid UTF-8; check the input's encoding")
    assert usernames(settings) == []


# users set-password


def test_set_password_replaces_the_stored_hash(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    create(runner, "alice")

    result = runner.invoke(
        args=["users", "set-password", "ALICE", "--password-stdin"], input=f"{NEW_PASSWORD}\n"
    )

    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "changed the password of 'alice'; ended 0 login(s)\n"
    assert verifies(stored_hash(settings), NEW_PASSWORD)
    assert not verifies(stored_hash(settings), PASSWORD)


@pytest.mark.parametrize(
    ("password", "location"),
    [(PASSWORD, None), (NEW_PASSWORD, "/hello")],
    ids=["old-password-refused", "new-password-accepted"],
)
async def test_set_password_decides_which_password_logs_in(
    app: Quart, auth: AuthActions, runner: QuartCliRunner, password: str, location: str | None
) -> None:
    await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=f"{NEW_PASSWORD}\n"
    )

    response = await AuthActions(app.test_client()).login("alice", password)

    assert response.headers.get("Location") == location
    if location is None:
        assert "Invalid Credentials" in await body(response)


async def test_set_password_ends_logins_made_before_the_change(
    app: Quart, auth: AuthActions, client: TestClientProtocol, runner: QuartCliRunner
) -> None:
    await auth.login()
    cookie = cookie_value(client)

    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=f"{NEW_PASSWORD}\n"
    )
    response = await replay(app, cookie).get("/hello")

    assert result.stdout == "changed the password of 'alice'; ended 1 login(s)\n"
    assert_sent_to_login(response)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "the password is empty"),
        ("x" * 14, "the password is shorter than 15 characters"),
        ("x" * 1025, "the password is longer than 1024 characters"),
        ("passwordpassword", f"the password is too easy to guess: {REPEATS}"),
    ],
    ids=["empty", "too-short", "too-long", "common"],
)
def test_set_password_refuses_a_password_against_the_policy(
    runner: QuartCliRunner, settings: dict[str, Any], password: str, message: str
) -> None:
    create(runner, "alice")
    original = stored_hash(settings)

    result = runner.invoke(
        args=["users", "set-password", "alice", "--password-stdin"], input=f"{password}\n"
    )

    assert_refused(result, message)
    assert stored_hash(settings) == original


async def test_set_password_refused_by_policy_keeps_logins(
    app: Quart, auth: AuthActions, client: TestClientProtocol, runner: QuartCliRunner
) -> None:
    await auth.login()

    result = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin="x\n"
    )
    response = await client.get("/hello")

    assert result.exit_code == 1
    assert response.status_code == 200


L33T_72 = ("4@8(<{[3!1|0$5+7%2" * 4)[:72]


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
@pytest.mark.parametrize(
    ("password", "accepted"),
    [
        (NEW_PASSWORD, True),
        (L33T_72, True),
        ("passwordpassword", False),
        ("p@$$w0rdp@$$w0rd", False),
        ("alicealicealice", False),
        ("passwordpassword" + "x" * 40, False),
        ("x" * 14, False),
    ],
    ids=["passphrase", "l33t-72", "common", "l33t-repeat", "username", "weak-prefix", "short"],
)
async def test_cli_and_page_accept_and_refuse_the_same_passwords(
    auth: AuthActions, runner: QuartCliRunner, password: str, accepted: bool
) -> None:
    await auth.login()
    form = {
        "current_password": PASSWORD,
        "new_password": password,
        "new_password2": password,
        "csrf_token": await csrf_token(auth.client, "/account/password"),
    }

    page = await auth.client.post("/account/password", form=form)
    command = await invoke(
        runner, "users", "set-password", "alice", "--password-stdin", stdin=f"{password}\n"
    )

    # These are refused or accepted whoever has them, so a new user shows the same.
    created = await invoke(
        runner, "users", "create", "carol", "--password-stdin", stdin=f"{password}\n"
    )

    assert (page.status_code == 302) is accepted
    assert (command.exit_code == 0) is accepted
    assert (created.exit_code == 0) is accepted


# users delete


def test_delete_with_yes_removes_the_user(
    runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    create(runner, "alice")
    create(runner, "bob")

    result = runner.invoke(args=["users", "delete", "Alice", "--yes"])

    assert (result.exit_code, result.stdout, result.stderr) == (0, "deleted user 'alice'\n", "")
    assert usernames(settings) == ["bob"]


@pytest.mark.parametrize(
    ("answer", "exit_code", "remaining"),
    [("y\n", 0, []), ("n\n", 1, ["alice"]), ("\n", 1, ["alice"]), ("", 1, ["alice"])],
    ids=["yes", "no", "enter", "end-of-input"],
)
def test_delete_without_yes_asks_first(
    runner: QuartCliRunner,
    settings: dict[str, Any],
    answer: str,
    exit_code: int,
    remaining: list[str],
) -> None:
    create(runner, "alice")

    result = runner.invoke(args=["users", "delete", "alice"], input=answer)

    assert "Delete user 'alice'? [y/N]" in result.stdout
    assert result.exit_code == exit_code
    assert usernames(settings) == remaining


async def test_delete_ends_the_users_logins_at_once(
    app: Quart,
    auth: AuthActions,
    client: TestClientProtocol,
    runner: QuartCliRunner,
    settings: dict[str, Any],
) -> None:
    await auth.login()

    await invoke(runner, "users", "delete", "alice", "--yes")
    response = await client.get("/hello")

    assert_sent_to_login(response)
    assert await login_count(settings) == 0


# users list


@BOTH_DATABASES
def test_list_prints_each_username_in_order(runner: QuartCliRunner) -> None:
    create(runner, "carol")
    create(runner, "Alice")
    create(runner, "bob")

    result = runner.invoke(args=["users", "list"])

    assert (result.exit_code, result.stderr) == (0, "")
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "alice",
        "bob",
        "carol",
    ]


def test_list_says_no_users_on_stderr_when_empty(runner: QuartCliRunner) -> None:
    result = runner.invoke(args=["users", "list"])

    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "no users\n")


# users revoke-sessions


@BOTH_DATABASES
async def test_revoke_sessions_refuses_a_replayed_cookie(
    app: Quart, auth: AuthActions, client: TestClientProtocol, runner: QuartCliRunner
) -> None:
    await auth.login()
    cookie = cookie_value(client)
    assert (await replay(app, cookie).get("/hello")).status_code == 200

    result = await invoke(runner, "users", "revoke-sessions", "alice")
    response = await replay(app, cookie).get("/hello")

    assert result.stdout == "ended 1 login(s) of 'alice'\n"
    assert_sent_to_login(response)


async def test_revoke_sessions_ends_logins_on_every_device(
    app: Quart, auth: AuthActions, runner: QuartCliRunner, settings: dict[str, Any]
) -> None:
    await auth.login()
    await AuthActions(app.test_client()).login(remember=True)

    result = await invoke(runner, "users", "revoke-sessions", "ALICE")

    assert result.stdout == "ended 2 login(s) of 'alice'\n"
    assert await login_count(settings) == 0


async def test_revoke_sessions_leaves_other_users_logged_in(
    app: Quart, auth: AuthActions, runner: QuartCliRunner
) -> None:
    await add_user(app, "bob")
    bob = app.test_client()
    await AuthActions(bob).login("bob")
    await auth.login()

    await invoke(runner, "users", "revoke-sessions", "alice")
    response = await bob.get("/hello")

    assert response.status_code == 200
    assert "Hello, bob!" in await body(response)


# Errors common to the commands


@pytest.mark.parametrize(
    "args",
    [
        ["users", "set-password", "nobody", "--password-stdin"],
        ["users", "delete", "nobody", "--yes"],
        ["users", "delete", "nobody"],
        ["users", "revoke-sessions", "nobody"],
        ["users", "revoke-sessions", "NoBody"],
    ],
    ids=["set-password", "delete-yes", "delete", "revoke-sessions", "revoke-sessions-case"],
)
def test_commands_refuse_an_unknown_user(runner: QuartCliRunner, args: list[str]) -> None:
    create(runner, "alice")

    result = runner.invoke(args=args, input=f"{NEW_PASSWORD}\n")

    assert_refused(result, "no user named 'nobody'")
    assert "Password" not in result.output


@SQLITE_ONLY  # refused or parsed before any SQL: no database decides it
@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["users", "create", "bad name", "--password-stdin"], PASSWORD),
        (["users", "create", "bob", "--password-stdin"], "short"),
        (["users", "create", "bob", "--password-stdin"], b"\xff\xfe\n"),
        (["users", "create", "bob"], ""),
        (["users", "create", "bob"], "one long password\nanother long password\n"),
        (["users", "create"], ""),
        (["users", "create", "alice", "--password-stdin"], PASSWORD),
        (["users", "set-password", "nobody", "--password-stdin"], PASSWORD),
        (["users", "set-password", "alice", "--password-stdin"], " "),
        (["users", "delete", "alice"], "n\n"),
        (["users", "delete", "nobody", "--yes"], ""),
        (["users", "revoke-sessions", "nobody"], ""),
        (["users", "list", "extra"], ""),
        (["users", "frobnicate"], ""),
    ],
    ids=[
        "create-bad-name",
        "create-short-password",
        "create-not-utf8",
        "create-no-input",
        "create-mismatched-confirmation",
        "create-no-name",
        "create-taken-name",
        "set-password-unknown-user",
        "set-password-blank",
        "delete-declined",
        "delete-unknown-user",
        "revoke-unknown-user",
        "list-extra-argument",
        "unknown-command",
    ],
)
def test_no_command_prints_a_traceback_on_bad_input(
    runner: QuartCliRunner, args: list[str], stdin: str | bytes
) -> None:
    create(runner, "alice")

    result = runner.invoke(args=args, input=stdin)

    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output


def _broken_database(tmp_path: Path) -> str:
    not_a_database = tmp_path / "garbage.db"
    not_a_database.write_bytes(b"this is not an SQLite file " * 100)
    return f"sqlite:///{not_a_database}"


def _database_under_a_file(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("")
    return f"sqlite:///{tmp_path / 'a-file' / 'test.db'}"


@pytest.mark.parametrize("make_url", [_broken_database, _database_under_a_file])
def test_an_unusable_database_is_one_line_error(
    tmp_path: Path, make_url: Callable[[Path], str]
) -> None:
    settings = make_settings(tmp_path, DATABASE_URL=make_url(tmp_path))
    runner = create_app(settings).test_cli_runner()

    result = runner.invoke(args=["users", "list"])

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("Error: cannot use the database: ")
    assert len(result.stderr.splitlines()) == 1


# init-db (now the same as db upgrade; see test_schema.py)


@BOTH_DATABASES
def test_init_db_keeps_existing_users(runner: QuartCliRunner, settings: dict[str, Any]) -> None:
    create(runner, "alice")

    result = runner.invoke(args=["init-db"])

    assert result.exit_code == 0
    assert "nothing to apply" in result.stdout
    assert usernames(settings) == ["alice"]


# Configuration errors


def test_unsafe_configuration_is_one_line_error_without_traceback(tmp_path: Path) -> None:
    # The autouse fixture has already removed SECRET_KEY and QUARTAPP_* from os.environ.
    env = {**os.environ, "QUARTAPP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x"}

    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "users", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Error: SECRET_KEY is missing in production; ")
    assert len(result.stderr.splitlines()) == 1
