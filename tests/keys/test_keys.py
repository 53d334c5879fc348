"""Tests for the ``python -m quartapp.keys`` secret-key generator."""

from __future__ import annotations

import http.client
import json
import math
import os
import stat
import subprocess
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quartapp import load_config
from quartapp.keys import (
    MIN_ENTROPY_BYTES,
    SECRETS_FILENAME,
    KeyFileError,
    _render,
    generate_key,
    write_secrets,
)
from quartapp.keys.command import main
from quartapp.keys.retire import (
    COMMENT_PREFIX,
    DEFAULT_SESSION_DAYS,
    RETIRED_VARIABLE,
    fingerprint,
)
from quartapp.keys.toml import Value
from quartapp.settings.schema import SETTINGS
from tests.support.server import (
    CSRF_INPUT,
    INPUT_VALUE,
    REQUEST_TIMEOUT,
    Launcher,
    Server,
    development_env,
    init_db,
)

ROOT = Path(__file__).parents[2]
# len(secrets.token_urlsafe(32)): 32 bytes of base64 without padding.
KEY_LENGTH_32 = 43
# Writers that race to create one secrets file.
RACERS = 16
# Form posts on connections of their own, spread over the server's workers.
POSTS = 40
POSTS_AT_ONCE = 8
POST_ROUNDS = 5
ACCESS_LOG_WAIT = 5.0


def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    """An existing secrets file with extra user keys, as written by hand or an old run."""
    path = tmp_path / SECRETS_FILENAME
    path.write_text(
        'SECRET_KEY = "old-key"\n'
        'WTF_CSRF_SECRET_KEY = "old-csrf"\n'
        'DATABASE_URL = "postgresql+asyncpg://u:p@db/app"\n'
        "DEBUG = false\n"
        "PORT = 8000\n"
        "RATIO = 1.5\n"
        'HOSTS = ["a.example", "b.example"]\n'
        '"odd key" = "quote \\" backslash \\\\ del \\u007f tab \\t emoji 😀"\n',
        encoding="utf-8",
    )
    return path


def test_writes_both_keys_with_32_bytes_of_entropy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "-d", str(tmp_path))

    assert (code, err) == (0, "")
    path = tmp_path / SECRETS_FILENAME
    assert out == f"wrote SECRET_KEY and WTF_CSRF_SECRET_KEY to {path} (mode 0600)\n"
    data = _load(path)
    assert set(data) == {"SECRET_KEY", "WTF_CSRF_SECRET_KEY"}
    assert len(data["SECRET_KEY"]) == len(data["WTF_CSRF_SECRET_KEY"]) == KEY_LENGTH_32
    assert data["SECRET_KEY"] != data["WTF_CSRF_SECRET_KEY"]


def test_output_never_contains_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "-d", str(tmp_path))
    _, rotate_out, _ = _run(capsys, "-d", str(tmp_path), "--rotate")

    data = _load(tmp_path / SECRETS_FILENAME)
    for key in (data["SECRET_KEY"], data["WTF_CSRF_SECRET_KEY"], *data["SECRET_KEY_FALLBACKS"]):
        assert key not in out + rotate_out


def test_file_is_mode_0600_and_new_dir_is_mode_0700(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "instance"
    _run(capsys, "-d", str(directory))

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / SECRETS_FILENAME).stat().st_mode) == 0o600


def test_leaves_no_temp_files_behind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "-d", str(tmp_path))
    _run(capsys, "-d", str(tmp_path), "--force")
    _run(capsys, "-d", str(tmp_path), "--rotate")

    assert [p.name for p in tmp_path.iterdir()] == [SECRETS_FILENAME]


def test_keys_differ_between_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(capsys, "-d", str(tmp_path / "one"))
    _run(capsys, "-d", str(tmp_path / "two"))

    one = _load(tmp_path / "one" / SECRETS_FILENAME)
    two = _load(tmp_path / "two" / SECRETS_FILENAME)
    assert one["SECRET_KEY"] != two["SECRET_KEY"]
    assert one["WTF_CSRF_SECRET_KEY"] != two["WTF_CSRF_SECRET_KEY"]


def test_default_dir_is_instance_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    code, out, _ = _run(capsys)

    assert code == 0
    assert "instance/secrets.toml" in out
    assert (tmp_path / "instance" / SECRETS_FILENAME).is_file()


def test_dir_option_creates_nested_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "a" / "b" / "c"

    code, _, _ = _run(capsys, "--dir", str(directory))

    assert code == 0
    assert set(_load(directory / SECRETS_FILENAME)) == {"SECRET_KEY", "WTF_CSRF_SECRET_KEY"}


def test_refuses_to_overwrite_without_force(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = secrets_file.read_bytes()

    code, out, err = _run(capsys, "-d", str(secrets_file.parent))

    assert (code, out) == (1, "")
    assert err.startswith(f"error: {secrets_file} already exists")
    assert "--force" in err
    assert "--rotate" in err
    assert err.count("\n") == 1
    assert secrets_file.read_bytes() == before


def test_force_overwrites_with_fresh_keys(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _run(capsys, "-d", str(secrets_file.parent), "--force")

    assert code == 0
    data = _load(secrets_file)
    assert set(data) == {"SECRET_KEY", "WTF_CSRF_SECRET_KEY"}
    assert data["SECRET_KEY"] != "old-key"
    assert data["WTF_CSRF_SECRET_KEY"] != "old-csrf"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_rotate_moves_old_key_to_fallbacks_and_keeps_other_keys(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _load(secrets_file)

    code, out, _ = _run(capsys, "-d", str(secrets_file.parent), "--rotate")

    assert code == 0
    assert "SECRET_KEY_FALLBACKS" in out
    after = _load(secrets_file)
    assert after["SECRET_KEY_FALLBACKS"] == ["old-key"]
    assert after["SECRET_KEY"] not in {"old-key", before["WTF_CSRF_SECRET_KEY"]}
    assert after["WTF_CSRF_SECRET_KEY"] != "old-csrf"
    generated = {"SECRET_KEY", "WTF_CSRF_SECRET_KEY", "SECRET_KEY_FALLBACKS"}
    assert {k: v for k, v in after.items() if k not in generated} == {
        k: v for k, v in before.items() if k not in generated
    }
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_rotate_keeps_every_fallback_retired_within_the_session_lifetime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / SECRETS_FILENAME
    _run(capsys, "-d", str(tmp_path))
    history = [_load(path)["SECRET_KEY"]]

    # Five rotations in a row: every old key may still sign a live cookie.
    for _ in range(5):
        code, out, _ = _run(capsys, "-d", str(tmp_path), "--rotate")
        assert code == 0
        assert "dropped" not in out
        data = _load(path)
        assert data["SECRET_KEY_FALLBACKS"] == history[::-1]
        history.append(data["SECRET_KEY"])
    record = _retired_line(path)
    assert set(record) == {fingerprint(key) for key in history[:-1]}


def _retired_line(path: Path) -> dict[str, str]:
    """The secrets file's record of when each fallback was retired."""
    lines = [line for line in path.read_text().splitlines() if line.startswith(COMMENT_PREFIX)]
    assert len(lines) == 1
    return dict(json.loads(lines[0].removeprefix(COMMENT_PREFIX)))


def test_rotate_drops_only_the_fallbacks_retired_before_the_session_lifetime(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / SECRETS_FILENAME
    record = {fingerprint("expired"): "2020-01-01T00:00:00Z", fingerprint("recent"): _ago(days=2)}
    path.write_text(
        f"{COMMENT_PREFIX}{json.dumps(record)}\n"
        'SECRET_KEY = "current"\n'
        'SECRET_KEY_FALLBACKS = ["recent", "expired", "unrecorded"]\n'
    )
    path.chmod(0o600)

    code, out, _ = _run(capsys, "-d", str(tmp_path), "--rotate")

    assert code == 0
    # Unrecorded: retired at the latest now, so kept a full lifetime more.
    assert _load(path)["SECRET_KEY_FALLBACKS"] == ["current", "recent", "unrecorded"]
    assert "dropped 1 retired more than 30 days ago (REMEMBER_ME_DAYS)" in out
    assert fingerprint("expired") in out
    assert "expired" not in out.replace(fingerprint("expired"), "")
    kept = _retired_line(path)
    assert set(kept) == {fingerprint(k) for k in ("current", "recent", "unrecorded")}
    assert kept[fingerprint("recent")] == record[fingerprint("recent")]


def test_rotate_reads_the_session_lifetime_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / SECRETS_FILENAME
    record = {fingerprint("old"): _ago(days=3)}
    path.write_text(
        f'{COMMENT_PREFIX}{json.dumps(record)}\nSECRET_KEY = "k"\nSECRET_KEY_FALLBACKS = ["old"]\n'
    )
    path.chmod(0o600)
    monkeypatch.setenv("QUARTAPP_REMEMBER_ME_DAYS", "2")

    code, out, _ = _run(capsys, "-d", str(tmp_path), "--rotate")

    assert code == 0
    assert _load(path)["SECRET_KEY_FALLBACKS"] == ["k"]
    assert "dropped 1 retired more than 2 days ago" in out


def test_rotate_reads_the_session_lifetime_from_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / SECRETS_FILENAME
    record = {fingerprint("old"): _ago(days=3)}
    path.write_text(
        f'{COMMENT_PREFIX}{json.dumps(record)}\nSECRET_KEY = "k"\nSECRET_KEY_FALLBACKS = ["old"]\n'
    )
    path.chmod(0o600)
    config = tmp_path / "site.toml"
    config.write_text("REMEMBER_ME_DAYS = 2\n")
    monkeypatch.setenv("QUARTAPP_CONFIG", str(config))

    code, out, _ = _run(capsys, "-d", str(tmp_path), "--rotate")

    assert code == 0
    assert "dropped 1 retired more than 2 days ago" in out


def test_the_tools_default_session_lifetime_is_the_settings_default() -> None:
    row = next(row for row in SETTINGS if row.name == "REMEMBER_ME_DAYS")

    assert row.default == DEFAULT_SESSION_DAYS


def _ago(*, days: int) -> str:
    moment = datetime.now(UTC) - timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "run without --rotate first", id="missing-file"),
        pytest.param("SECRET_KEY = \n", "is not valid TOML", id="invalid-toml"),
        pytest.param(b"SECRET_KEY = '\xff'\n", "is not valid TOML", id="not-utf8"),
        pytest.param('OTHER = "x"\n', "no SECRET_KEY string", id="no-secret-key"),
        pytest.param("SECRET_KEY = 5\n", "no SECRET_KEY string", id="secret-key-not-str"),
        pytest.param(
            'SECRET_KEY = "k"\nSECRET_KEY_FALLBACKS = "j"\n',
            "must be a list of strings",
            id="fallbacks-not-list",
        ),
        pytest.param('SECRET_KEY = "k"\n[db]\nurl = "x"\n', "cannot keep 'db' (dict)", id="table"),
        pytest.param(
            'SECRET_KEY = "k"\nWHEN = 2024-01-01\n', "cannot keep 'WHEN' (date)", id="date"
        ),
        pytest.param(
            'SECRET_KEY = "k"\nNESTED = [[1]]\n', "cannot keep 'NESTED' (list)", id="nested-list"
        ),
    ],
)
def test_rotate_rejects_bad_existing_file_cleanly(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    expected: str,
) -> None:
    path = tmp_path / SECRETS_FILENAME
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)

    code, out, err = _run(capsys, "-d", str(tmp_path), "--rotate")

    assert (code, out) == (1, "")
    assert err.startswith(f"error: {path}")
    assert expected in err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    if content is None:
        assert not path.exists()
    else:
        assert path.read_bytes() == (content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("flags", [["--force"], ["--rotate"]], ids=["force", "rotate"])
def test_unreadable_or_unwritable_target_gives_os_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    # A directory where the file should be fails for root too, unlike chmod 000.
    (tmp_path / SECRETS_FILENAME).mkdir()

    code, _, err = _run(capsys, "-d", str(tmp_path), *flags)

    assert code == 1
    assert err.startswith("error: cannot ")
    assert "Is a directory" in err
    assert err.count("\n") == 1


def test_dir_that_is_a_file_gives_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("", encoding="utf-8")

    code, _, err = _run(capsys, "-d", str(not_a_dir))

    assert code == 1
    assert err.startswith(f"error: cannot write {not_a_dir / SECRETS_FILENAME}: ")
    assert "--dir" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["-r", "16"], "minimum of 32", id="r-16"),
        pytest.param(["--randomness", "31"], "minimum of 32", id="randomness-31"),
        pytest.param(["-r", "0"], "minimum of 32", id="r-0"),
        pytest.param(["-r", "lots"], "not a whole number", id="r-not-int"),
        pytest.param(["--print", "--rotate"], "not allowed with", id="print-rotate"),
        pytest.param(["--print", "--force"], "not allowed with", id="print-force"),
        pytest.param(["--force", "--rotate"], "not allowed with", id="force-rotate"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["-d", str(tmp_path / "instance"), *argv])

    assert excinfo.value.code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "instance").exists()


def test_randomness_64_gives_longer_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, "-d", str(tmp_path), "-r", "64")

    data = _load(tmp_path / SECRETS_FILENAME)
    assert len(data["SECRET_KEY"]) == len(data["WTF_CSRF_SECRET_KEY"]) == 86


def test_print_outputs_one_key_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # An existing file is irrelevant to --print and must survive it.
    (tmp_path / "instance").mkdir()
    existing = tmp_path / "instance" / SECRETS_FILENAME
    existing.write_text('SECRET_KEY = "keep"\n', encoding="utf-8")

    code, out, err = _run(capsys, "--print")

    assert (code, err) == (0, "")
    name, _, key = out.removesuffix("\n").partition("=")
    assert out.count("\n") == 1
    assert name == "SECRET_KEY"
    assert len(key) == KEY_LENGTH_32
    assert [p.name for p in tmp_path.iterdir()] == ["instance"]
    assert existing.read_text(encoding="utf-8") == 'SECRET_KEY = "keep"\n'


def test_print_honours_randomness(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "--print", "-r", "64")

    assert len(out.strip().removeprefix("SECRET_KEY=")) == 86


@pytest.mark.parametrize("nbytes", [-1, 0, 16, MIN_ENTROPY_BYTES - 1])
def test_generate_key_rejects_too_little_entropy(nbytes: int) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        generate_key(nbytes)


@pytest.mark.parametrize(("nbytes", "length"), [(32, KEY_LENGTH_32), (48, 64), (64, 86)])
def test_generate_key_length_matches_entropy(nbytes: int, length: int) -> None:
    assert len(generate_key(nbytes)) == length


def test_write_secrets_api_returns_path_and_rejects_force_with_rotate(tmp_path: Path) -> None:
    assert write_secrets(tmp_path) == tmp_path / SECRETS_FILENAME
    with pytest.raises(KeyFileError, match="already exists"):
        write_secrets(tmp_path)
    with pytest.raises(ValueError, match="mutually exclusive"):
        write_secrets(tmp_path, force=True, rotate=True)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        write_secrets(tmp_path / "new", nbytes=8)
    assert not (tmp_path / "new").exists()


_scalars = (
    st.text()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
)


@given(st.dictionaries(st.text(), _scalars | st.lists(_scalars, max_size=4), max_size=5))
def test_rendered_toml_reads_back_unchanged(values: dict[str, Value]) -> None:
    assert tomllib.loads(_render(values)) == values


def test_rendered_toml_round_trips_nan() -> None:
    assert math.isnan(tomllib.loads(_render({"X": math.nan}))["X"])


def test_cli_runs_as_a_module_in_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "quartapp.keys", "-d", str(tmp_path / "inst")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("wrote SECRET_KEY and WTF_CSRF_SECRET_KEY to ")
    assert set(_load(tmp_path / "inst" / SECRETS_FILENAME)) == {
        "SECRET_KEY",
        "WTF_CSRF_SECRET_KEY",
    }


def test_cli_works_while_the_app_refuses_to_start(tmp_path: Path) -> None:
    # The tool is how you fix an app that will not start, so it must not build the app.
    env = {
        **os.environ,
        "QUARTAPP_ENV": "production",
        "QUARTAPP_CONFIG": str(tmp_path / "missing.toml"),
        "SECRET_KEY": "dev",
    }
    result = subprocess.run(
        [sys.executable, "-m", "quartapp.keys", "-d", str(tmp_path / "inst")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0
    # The one line it says: the file it wrote is not what the app will use.
    assert result.stderr.startswith("note: SECRET_KEY is set in the environment and overrides")
    assert result.stderr.count("\n") == 1
    assert "dev" not in result.stderr.split()
    assert (tmp_path / "inst" / SECRETS_FILENAME).exists()


def _rotate_in_environment(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m quartapp.keys --rotate`` in a deploy checkout: keys in the environment."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("QUARTAPP_")
        and name not in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", RETIRED_VARIABLE)
    }
    return subprocess.run(
        [sys.executable, "-m", "quartapp.keys", "--rotate", "-d", str(tmp_path / "inst")],
        cwd=ROOT,
        env={**env, **settings},
        capture_output=True,
        text=True,
        check=False,
    )


def _exported(tmp_path: Path, assignments: str) -> dict[str, str]:
    """What a shell sets from the printed lines, as the app then reads them."""
    script = f"export {assignments.replace(chr(10), ' ')}\n" + (
        f"{sys.executable} -c 'import json, os; print(json.dumps("
        '{k: os.environ.get(k) for k in ("SECRET_KEY", "SECRET_KEY_FALLBACKS", '
        f'"{RETIRED_VARIABLE}")}}))\''
    )
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    return dict(json.loads(result.stdout))


def test_rotate_with_the_key_in_the_environment_prints_both_settings_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = "o" * 43

    result = _rotate_in_environment(tmp_path, SECRET_KEY=old)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        RETIRED_VARIABLE,
    ]
    assert "restart" in result.stderr
    assert "REMEMBER_ME_DAYS" in result.stderr
    assert not (tmp_path / "inst").exists()
    exported = _exported(tmp_path, result.stdout)
    assert exported["SECRET_KEY"] != old
    assert len(exported["SECRET_KEY"]) >= 43
    assert json.loads(exported["SECRET_KEY_FALLBACKS"]) == [old]
    # The app reads both, unprefixed, as the new key and its fallback: its own
    # load_config on an environment holding what the shell set (in this process: a
    # Python of its own would only add the app's imports).
    monkeypatch.setenv("QUARTAPP_INSTANCE_PATH", str(tmp_path / "app-instance"))
    monkeypatch.setenv("SECRET_KEY", exported["SECRET_KEY"])
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", exported["SECRET_KEY_FALLBACKS"])
    config = load_config()
    assert [config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"]] == [
        exported["SECRET_KEY"],
        [old],
    ]


def test_a_second_rotation_in_the_environment_keeps_the_first_fallback(
    tmp_path: Path,
) -> None:
    # The deploy page's rotation, twice within REMEMBER_ME_DAYS, with the real CLI.
    first = _rotate_in_environment(tmp_path, SECRET_KEY="k1" * 22)
    assert first.returncode == 0, first.stderr
    settings = _exported(tmp_path, first.stdout)

    second = _rotate_in_environment(tmp_path, **settings)

    assert second.returncode == 0, second.stderr
    after = _exported(tmp_path, second.stdout)
    assert json.loads(after["SECRET_KEY_FALLBACKS"]) == [settings["SECRET_KEY"], "k1" * 22]
    assert "dropped" not in second.stderr
    assert "kept 2 fallback key(s)" in second.stderr


def test_rotate_in_the_environment_drops_an_expired_fallback_and_says_which(
    tmp_path: Path,
) -> None:
    record = {fingerprint("k1"): "2020-01-01T00:00:00Z", fingerprint("k2"): _ago(days=29)}
    result = _rotate_in_environment(
        tmp_path,
        SECRET_KEY="k3",
        SECRET_KEY_FALLBACKS='["k2", "k1", "k0"]',
        **{RETIRED_VARIABLE: json.dumps(record)},
    )

    assert result.returncode == 0, result.stderr
    exported = _exported(tmp_path, result.stdout)
    assert json.loads(exported["SECRET_KEY_FALLBACKS"]) == ["k3", "k2", "k0"]
    assert "dropped 1 retired more than 30 days ago (REMEMBER_ME_DAYS)" in result.stderr
    assert f"{fingerprint('k1')} (retired 2020-01-01T00:00:00Z)" in result.stderr
    retired = json.loads(exported[RETIRED_VARIABLE])
    assert set(retired) == {fingerprint(k) for k in ("k3", "k2", "k0")}
    assert retired[fingerprint("k2")] == record[fingerprint("k2")]


@pytest.mark.parametrize("record", ["[]", '{"nothex": "2020-01-01T00:00:00Z"}', '{"%s": "soon"}'])
def test_rotate_in_the_environment_refuses_a_record_it_cannot_read(
    tmp_path: Path, record: str
) -> None:
    result = _rotate_in_environment(
        tmp_path,
        SECRET_KEY="o" * 43,
        **{RETIRED_VARIABLE: record.replace("%s", fingerprint("x"))},
    )

    assert (result.returncode, result.stdout) == (1, "")
    _one_error_line(result.stderr, RETIRED_VARIABLE, "JSON object")


@pytest.mark.parametrize("fallbacks", ["old-key", '{"a": 1}', "[1]"])
def test_rotate_in_the_environment_refuses_fallbacks_the_app_would_refuse(
    tmp_path: Path, fallbacks: str
) -> None:
    result = _rotate_in_environment(
        tmp_path, SECRET_KEY="o" * 43, QUARTAPP_SECRET_KEY_FALLBACKS=fallbacks
    )

    assert result.returncode == 1
    assert result.stdout == ""
    _one_error_line(result.stderr, "SECRET_KEY_FALLBACKS", "JSON list")
    assert "o" * 43 not in result.stderr


NOBODY = 65534
PLANTED = 'SECRET_KEY = "chosen-by-someone-else"\n'


def _one_error_line(err: str, *expected: str) -> None:
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    for text in expected:
        assert text in err


@pytest.mark.parametrize("folder_mode", [0o770, 0o707, 0o777, 0o1777], ids=oct)
@pytest.mark.parametrize("flags", [[], ["--force"], ["--rotate"]], ids=["new", "force", "rotate"])
def test_refuses_a_folder_others_can_write_to(
    secrets_file: Path, capsys: pytest.CaptureFixture[str], folder_mode: int, flags: list[str]
) -> None:
    folder = secrets_file.parent
    if not flags:
        secrets_file.unlink()
    before = sorted(p.name for p in folder.iterdir())
    folder.chmod(folder_mode)

    code, out, err = _run(capsys, "-d", str(folder), *flags)

    assert (code, out) == (1, "")
    _one_error_line(err, f"{folder} can be written by other users", "chmod go-w")
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([], "already exists", id="new"),
        pytest.param(["--force"], "is a symbolic link", id="force"),
        pytest.param(["--rotate"], "is a symbolic link", id="rotate"),
    ],
)
def test_symlink_planted_at_the_secrets_file_is_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o700)
    planted = tmp_path / "planted.toml"
    planted.write_text(PLANTED)
    (folder / SECRETS_FILENAME).symlink_to(planted)

    code, out, err = _run(capsys, "-d", str(folder), *flags)

    assert (code, out) == (1, "")
    _one_error_line(err, expected)
    assert planted.read_text() == PLANTED
    assert (folder / SECRETS_FILENAME).is_symlink()
    assert [p.name for p in folder.iterdir()] == [SECRETS_FILENAME]


@pytest.mark.parametrize("file_mode", [0o620, 0o602, 0o666], ids=oct)
def test_rotate_refuses_a_file_others_can_write(
    secrets_file: Path, capsys: pytest.CaptureFixture[str], file_mode: int
) -> None:
    secrets_file.chmod(file_mode)
    before = secrets_file.read_bytes()

    code, out, err = _run(capsys, "-d", str(secrets_file.parent), "--rotate")

    assert (code, out) == (1, "")
    _one_error_line(err, f"{secrets_file} can be written by other users", "--force")
    assert secrets_file.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can make a file owned by another user")
def test_rotate_refuses_a_file_of_another_user(
    secrets_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chown(secrets_file, NOBODY, NOBODY)
    before = secrets_file.read_bytes()

    code, out, err = _run(capsys, "-d", str(secrets_file.parent), "--rotate")

    assert (code, out) == (1, "")
    _one_error_line(err, f"{secrets_file} belongs to another user", "--force")
    assert secrets_file.read_bytes() == before


def test_rotate_refuses_a_fifo_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / SECRETS_FILENAME, 0o600)

    # In a subprocess, so that a tool that blocks opening the FIFO fails this test on
    # the timeout instead of hanging the suite.
    result = subprocess.run(
        [sys.executable, "-m", "quartapp.keys", "-d", str(tmp_path), "--rotate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, "")
    _one_error_line(result.stderr, "is not a regular file")


def test_racing_writers_on_an_empty_folder_leave_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "instance"
    start = threading.Barrier(RACERS)

    def race() -> bool:
        start.wait()
        try:
            write_secrets(directory)
        except KeyFileError:
            return False
        return True

    # Threads race like hypercorn's worker processes: file system calls release the GIL,
    # and the barrier lets them all go at once.
    with ThreadPoolExecutor(RACERS) as pool:
        created = list(pool.map(lambda _: race(), range(RACERS)))

    assert created.count(True) == 1
    assert set(_load(directory / SECRETS_FILENAME)) == {"SECRET_KEY", "WTF_CSRF_SECRET_KEY"}
    assert [p.name for p in directory.iterdir()] == [SECRETS_FILENAME]


def _csrf_form(server: Server) -> tuple[str, str]:
    """The session cookie and the CSRF token of one response to ``GET /login``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", "/login")
        response = connection.getresponse()
        page = response.read().decode()
        cookie = response.getheader("Set-Cookie", "").split(";")[0]
    finally:
        connection.close()
    field = CSRF_INPUT.search(page)
    assert field, page
    value = INPUT_VALUE.search(field.group(0))
    assert value, field.group(0)
    return cookie, value.group(1)


def _post_logout(server: Server, cookie: str, token: str) -> int:
    """POST the logout form on a connection of its own, so any worker may take it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=REQUEST_TIMEOUT)
    try:
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Connection": "close",
        }
        connection.request("POST", "/logout", urlencode({"csrf_token": token}), headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.server
def test_workers_starting_on_an_empty_instance_share_one_generated_key(
    tmp_path: Path,
) -> None:
    env = development_env(tmp_path, QUARTAPP_INITIAL_ADMIN="false")
    instance = Path(env["QUARTAPP_INSTANCE_PATH"])
    # The tables exist first (as after a release phase); a SECRET_KEY for that one
    # command keeps it from generating the file the workers are meant to race for.
    init_db({**env, "SECRET_KEY": "k" * 43})
    assert not (instance / SECRETS_FILENAME).exists()

    with Launcher(tmp_path) as launch:
        server = launch.hypercorn(env, "--workers", "4", wait=False)
        server.wait_workers(4)
        server.wait_healthy()
        cookie, token = _csrf_form(server)
        # Which worker accepts a connection is the kernel's choice, and on a busy machine
        # one of them can take every post sent one at a time: send them several at once,
        # a round of POSTS more until two workers have answered (at most POST_ROUNDS).
        statuses: list[int] = []
        posts: list[dict[str, Any]] = []
        post = partial(_post_logout, server, cookie, token)
        with ThreadPoolExecutor(POSTS_AT_ONCE) as pool:
            for _ in range(POST_ROUNDS):
                statuses += pool.map(lambda _: post(), range(POSTS))
                posts = server.access_entries(
                    len(statuses), ACCESS_LOG_WAIT, method="POST", path="/logout"
                )
                if len({entry["pid"] for entry in posts}) > 1:
                    break
        stderr = server.stderr

    assert stderr.count("generated one into") == 1, stderr
    assert set(_load(instance / SECRETS_FILENAME)) == {"SECRET_KEY", "WTF_CSRF_SECRET_KEY"}
    # Every post is checked against the key of whichever worker takes it; a worker
    # holding a key of its own would refuse the token with 400.
    assert statuses == [302] * len(statuses)
    assert len(posts) == len(statuses)
    # Each access log line names the worker process that answered.
    workers = {entry["pid"] for entry in posts}
    assert len(workers) > 1, "every post went to one worker, so nothing was shared"
