"""Configuration: the order of sources, derived settings and production refusals."""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
import sys
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from quartapp import FEATURES, create_app, load_config, serve, setting_parts
from quartapp.auth import settings as auth_settings
from quartapp.auth.settings import AuthSettings
from quartapp.bootstrap import prepare_instance
from quartapp.db import USERNAME_COLUMN
from quartapp.metrics import settings as metrics_settings
from quartapp.metrics.settings import MetricsSettings
from quartapp.passkeys import settings as passkey_settings
from quartapp.passkeys.settings import PasskeySettings
from quartapp.settings import (
    FRAMEWORK,
    SETTINGS,
    ConfigError,
    Part,
    Section,
    Setting,
    Settings,
    current,
    database_url,
    of,
    table,
)
from tests.support.settings import DEFAULTS

PARTS = setting_parts()
BY_NAME = table(PARTS)
# Every row: the shared base's and each feature's.
ROWS = SETTINGS + tuple(row for part in PARTS for row in part.rows)

GOOD_KEY = "k" * 43


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    """The instance folder the autouse fixture points QUARTAPP_INSTANCE_PATH at."""
    return tmp_path / "instance"


def test_each_source_overrides_the_one_before(
    tmp_path: Path, instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = write(
        tmp_path / "custom.toml",
        "REMEMBER_ME_DAYS = 2\nPASSWORD_MIN_LENGTH = 20\nHASHING_CONCURRENCY = 3\n"
        "USERNAME_MAX_LENGTH = 40\n",
    )
    write(
        instance / "secrets.toml",
        f'SECRET_KEY = "{"s" * 43}"\nPASSWORD_MIN_LENGTH = 21\nHASHING_CONCURRENCY = 4\n'
        "USERNAME_MAX_LENGTH = 41\n",
    )
    monkeypatch.setenv("QUARTAPP_CONFIG", str(config_file))
    monkeypatch.setenv("QUARTAPP_HASHING_CONCURRENCY", "5")
    monkeypatch.setenv("QUARTAPP_USERNAME_MAX_LENGTH", "42")

    config = load_config({"USERNAME_MAX_LENGTH": 43})

    assert config["ARGON2_PARALLELISM"] == DEFAULTS["ARGON2_PARALLELISM"]  # default
    assert config["REMEMBER_ME_DAYS"] == 2  # config file
    assert config["PASSWORD_MIN_LENGTH"] == 21  # secrets.toml
    assert config["HASHING_CONCURRENCY"] == 5  # environment
    assert config["USERNAME_MAX_LENGTH"] == 43  # overrides
    assert config["SECRET_KEY"] == "s" * 43


def test_repository_config_toml_is_read_by_default() -> None:
    with (Path(__file__).parents[2] / "config.toml").open("rb") as handle:
        committed = tomllib.load(handle)

    config = load_config()

    for name, value in committed.items():
        assert config[name] == value


def test_unprefixed_secret_key_and_database_url_come_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/x.db")

    config = load_config()

    assert config["SECRET_KEY"] == GOOD_KEY
    assert config["SQLALCHEMY_DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path}/x.db"


def test_prefixed_environment_values_are_parsed_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("QUARTAPP_SECRET_KEY_FALLBACKS", '["old-key"]')
    monkeypatch.setenv("QUARTAPP_DATABASE_ECHO", "false")

    config = load_config()

    assert config["SECRET_KEY_FALLBACKS"] == ["old-key"]
    assert config["DATABASE_ECHO"] is False


def test_unprefixed_secret_key_fallbacks_come_from_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a PaaS rotation sets: the new key and the old one, both without the prefix.
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", '["old-key", "older-key"]')

    config = load_config()

    assert config["SECRET_KEY_FALLBACKS"] == ["old-key", "older-key"]


def test_both_forms_of_a_setting_agreeing_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("QUARTAPP_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", '["old-key"]')
    monkeypatch.setenv("QUARTAPP_SECRET_KEY_FALLBACKS", '[ "old-key" ]')

    config = load_config()

    assert config["SECRET_KEY"] == GOOD_KEY
    assert config["SECRET_KEY_FALLBACKS"] == ["old-key"]


@pytest.mark.parametrize(
    ("name", "plain", "prefixed"),
    [
        ("SECRET_KEY_FALLBACKS", '["old-key"]', '["other-old-key"]'),
        ("SECRET_KEY", GOOD_KEY, "j" * 43),
        ("DATABASE_URL", "sqlite:////tmp/a.db", "sqlite:////tmp/b.db"),
    ],
)
def test_both_forms_of_a_setting_differing_are_refused_without_the_values(
    monkeypatch: pytest.MonkeyPatch, name: str, plain: str, prefixed: str
) -> None:
    monkeypatch.setenv(name, plain)
    monkeypatch.setenv(f"QUARTAPP_{name}", prefixed)

    with pytest.raises(ConfigError) as caught:
        load_config()

    line = caught.value.message
    assert line == f"{name} and QUARTAPP_{name} are both set and differ; unset one of them"


@pytest.mark.parametrize(
    ("variable", "raw", "shown"),
    [
        # The shell ate the quotes of '["127.0.0.1"]'.
        ("QUARTAPP_TRUSTED_HOSTS", "[127.0.0.1]", "not '[127.0.0.1]'"),
        ("QUARTAPP_TRUSTED_HOSTS", "app.example.com", "not 'app.example.com'"),
        ("QUARTAPP_LOG_LEVEL", "verbose", "not 'verbose'"),
        ("QUARTAPP_ARGON2_TIME_COST", "1", "not 1"),
        ("QUARTAPP_REMEMBER_ME_DAYS", "0", "not 0"),
        ("QUARTAPP_DATABASE_AUTO_UPGRADE", "yes", "not 'yes'"),
        ("QUARTAPP_USERNAME_MAX_LENGTH", "300", "not 300"),
        ("QUARTAPP_TRUSTED_HOSTS", "x" * 500, "..."),
    ],
)
def test_a_refused_setting_shows_the_value_received(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, shown: str
) -> None:
    monkeypatch.setenv(variable, raw)

    with pytest.raises(ConfigError) as caught:
        load_config()

    line = caught.value.message
    assert variable.removeprefix("QUARTAPP_") in line
    assert shown in line
    assert len(line) < 300


def test_a_refused_secret_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY_FALLBACKS", "a-secret-old-key")

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert "SECRET_KEY_FALLBACKS must be a list of strings" in caught.value.message
    assert "not a str" in caught.value.message
    assert "a-secret-old-key" not in caught.value.message


def test_missing_named_config_file_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUARTAPP_CONFIG", str(tmp_path / "nope.toml"))

    with pytest.raises(ConfigError, match="QUARTAPP_CONFIG"):
        load_config()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("REMEMBER_ME_DAYS = ", "cannot read config file"),
        ("remember_me_days = 3\n", "upper case"),
        ('REMEMBER_ME_DAYS = "many"\n', "REMEMBER_ME_DAYS must be a positive integer"),
        ("ARGON2_MEMORY_COST = 1024\n", "at least 19456"),
        ("ARGON2_TIME_COST = 1\n", "at least 2"),
        ("TRUSTED_PROXY_HOPS = -1\n", "TRUSTED_PROXY_HOPS"),
        ("DEVICES_MINTED_PER_WINDOW = 0\n", "DEVICES_MINTED_PER_WINDOW must be a positive"),
        ("DEVICES_PER_USER = true\n", "DEVICES_PER_USER must be a positive integer"),
        ('SECRET_KEY_FALLBACKS = "old"\n', "SECRET_KEY_FALLBACKS must be a list"),
        ('ENV = "staging"\n', "'development' or 'production'"),
        ('DATABASE_URL = "mysql://db/x"\n', "not supported"),
        ("PASSWORD_MIN_SCORE = 5\n", "PASSWORD_MIN_SCORE must be an integer from 0 to 4"),
        ("PASSWORD_MIN_SCORE = true\n", "PASSWORD_MIN_SCORE must be an integer from 0 to 4"),
        ("LOGINS_PER_USER_MAX = 0\n", "LOGINS_PER_USER_MAX must be a positive integer"),
        ('LOGINS_PER_USER_MAX = "50"\n', "LOGINS_PER_USER_MAX must be a positive integer"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, message: str
) -> None:
    monkeypatch.setenv("QUARTAPP_CONFIG", str(write(tmp_path / "bad.toml", text)))

    with pytest.raises(ConfigError, match=message):
        load_config()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "SECRET_KEY is missing"),
        ({"SECRET_KEY": "short-key"}, "SECRET_KEY is shorter than 32 bytes"),
        ({"SECRET_KEY": "my precious"}, "SECRET_KEY is"),
        ({"SECRET_KEY": "dev"}, "SECRET_KEY is"),
        ({"SECRET_KEY": "My Precious" + " " * 40}, "published placeholder"),
        ({"SECRET_KEY": GOOD_KEY, "DEBUG": True}, "DEBUG is on in production"),
        ({"SECRET_KEY": GOOD_KEY, "TESTING": True}, "TESTING is on in production"),
        ({"SECRET_KEY": GOOD_KEY, "TRUSTED_HOSTS": None}, "TRUSTED_HOSTS is not set"),
        ({"SECRET_KEY": GOOD_KEY, "TRUSTED_HOSTS": []}, "QUARTAPP_TRUSTED_HOSTS"),
        ({"SECRET_KEY": GOOD_KEY, "DATABASE_URL": None}, "DATABASE_URL is not set in production"),
    ],
)
def test_production_refuses_unsafe_settings(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, object], message: str
) -> None:
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", '["app.example.com"]')
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example.com/app")

    with pytest.raises(ConfigError, match=message) as caught:
        create_app(overrides)

    line = caught.value.message
    assert "\n" not in line
    if "SECRET_KEY" in message:
        assert "python -m quartapp.keys" in line
    key = overrides.get("SECRET_KEY")
    assert not isinstance(key, str) or key.strip() not in line


def test_production_refuses_the_docs_sample_key(monkeypatch: pytest.MonkeyPatch) -> None:
    page = (Path(__file__).parents[2] / "docs" / "keys.md").read_text()
    samples = re.findall(r"config:set SECRET_KEY=([^\s$\"]+)", page)
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", '["app.example.com"]')

    assert samples, "the keys page shows a sample SECRET_KEY"
    for sample in samples:
        with pytest.raises(ConfigError, match="placeholder"):
            create_app({"SECRET_KEY": sample})


@pytest.mark.parametrize("url", ["postgres://app@db.example.com/app", "sqlite:////srv/app.db"])
def test_production_accepts_a_generated_key_and_an_explicit_database(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", '["app.example.com"]')
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("DATABASE_URL", url)

    app = create_app()

    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["WTF_CSRF_SECRET_KEY"] == GOOD_KEY


def test_development_generates_keys_on_first_start(instance: Path) -> None:
    first = create_app()
    second = create_app()

    secrets_file = instance / "secrets.toml"
    assert stat.S_IMODE(os.stat(secrets_file).st_mode) == 0o600
    assert len(first.config["SECRET_KEY"]) >= 43
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["SESSION_COOKIE_SECURE"] is False


def test_workers_starting_together_share_one_generated_key(
    instance: Path, caplog: pytest.LogCaptureFixture
) -> None:
    racers = 8
    start = threading.Barrier(racers)

    def start_worker(_: int) -> str:
        start.wait()
        return str(prepare_instance(parts=PARTS)["SECRET_KEY"])

    with ThreadPoolExecutor(racers) as pool:
        keys = set(pool.map(start_worker, range(racers)))

    with (instance / "secrets.toml").open("rb") as handle:
        assert keys == {tomllib.load(handle)["SECRET_KEY"]}
    assert sum("generated one into" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgres://u:p@db/app?sslmode=require", "postgresql+asyncpg://u:p@db/app?ssl=require"),
        ("sqlite:////srv/app.db", "sqlite+aiosqlite:////srv/app.db"),
        ("sqlite+aiosqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_database_urls_are_made_async(raw: str, expected: str) -> None:
    assert database_url(raw) == expected


@pytest.mark.parametrize("raw", ["not a url", "mysql://x/y", "postgresql+psycopg2://x/y"])
def test_unsupported_database_urls_are_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        database_url(raw)


@pytest.mark.parametrize(
    "hosts",
    ['["app.example.com"]', '[".example.com"]', '["localhost", "192.0.2.10"]'],
)
def test_public_trusted_hosts_without_a_mode_are_refused(
    monkeypatch: pytest.MonkeyPatch, hosts: str
) -> None:
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", hosts)
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)

    with pytest.raises(ConfigError) as caught:
        create_app()

    assert caught.value.message == (
        "TRUSTED_HOSTS names public hosts but QUARTAPP_ENV is not set; set "
        "QUARTAPP_ENV=production (or development for a trial)"
    )


@pytest.mark.parametrize(
    "hosts", [None, ["localhost"], ["127.0.0.1", "[::1]", "LOCALHOST"]], ids=str
)
def test_local_trusted_hosts_without_a_mode_mean_development(
    hosts: list[str] | None,
) -> None:
    config = load_config({"TRUSTED_HOSTS": hosts})

    assert config["ENV"] == "development"
    assert config["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize("mode", ["development", "production"])
@pytest.mark.parametrize("source", ["environment", "config-file", "overrides"])
def test_public_trusted_hosts_with_a_stated_mode_start_in_that_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str, mode: str
) -> None:
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", '["app.example.com"]')
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example.com/app")
    overrides = {}
    if source == "environment":
        monkeypatch.setenv("QUARTAPP_ENV", mode)
    elif source == "config-file":
        monkeypatch.setenv("QUARTAPP_CONFIG", str(write(tmp_path / "c.toml", f'ENV = "{mode}"\n')))
    else:
        overrides["ENV"] = mode

    config = load_config(overrides)

    assert config["ENV"] == mode
    assert config["SESSION_COOKIE_SECURE"] is (mode == "production")


NOBODY = 65534
# Only root can give a file to another user; the suite runs as root in CI.
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can make a file owned by another user"
)


def plant_secrets(instance: Path, *, file_mode: int = 0o600, folder_mode: int = 0o700) -> Path:
    """A secrets.toml that lowers the password policy, as an intruder would write it."""
    instance.mkdir(mode=folder_mode, exist_ok=True)
    instance.chmod(folder_mode)
    path = instance / "secrets.toml"
    path.write_text(f'SECRET_KEY = "{"s" * 43}"\nPASSWORD_MIN_SCORE = 0\n')
    path.chmod(file_mode)
    return path


def assert_refused(expected: str, *fixes: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = caught.value.message
    assert len(message.splitlines()) == 1
    assert message.startswith("refusing to load ")
    assert expected in message
    for fix in fixes:
        assert fix in message
    return message


@pytest.mark.parametrize("file_mode", [0o600, 0o400, 0o640, 0o644])
def test_secrets_file_of_ours_is_loaded(instance: Path, file_mode: int) -> None:
    plant_secrets(instance, file_mode=file_mode)

    config = load_config()

    assert config["SECRET_KEY"] == "s" * 43
    assert config["PASSWORD_MIN_SCORE"] == 0


@pytest.mark.parametrize("file_mode", [0o666, 0o620, 0o602], ids=oct)
def test_secrets_file_others_can_write_is_refused(instance: Path, file_mode: int) -> None:
    path = plant_secrets(instance, file_mode=file_mode)

    assert_refused(
        f"{path} can be written by other users", f"chown {_me()} {path} && chmod 600 {path}"
    )


@needs_root
def test_secrets_file_of_another_user_is_refused(instance: Path) -> None:
    path = plant_secrets(instance)
    os.chown(path, NOBODY, NOBODY)

    assert_refused(f"{path} belongs to another user (uid {NOBODY})", "chmod 600", "chown")


@pytest.mark.parametrize("folder_mode", [0o777, 0o770, 0o1777], ids=oct)
def test_secrets_in_a_folder_others_can_write_are_refused(
    instance: Path, folder_mode: int
) -> None:
    plant_secrets(instance, folder_mode=folder_mode)

    assert_refused(f"{instance} can be written by other users", f"chmod go-w {instance}")


@needs_root
def test_secrets_in_a_folder_of_another_user_are_refused(instance: Path) -> None:
    plant_secrets(instance, folder_mode=0o755)
    os.chown(instance, NOBODY, NOBODY)

    assert_refused(f"{instance} belongs to another user", "use a folder of your own")


def test_secrets_file_that_is_a_symlink_is_refused(tmp_path: Path, instance: Path) -> None:
    # Even to a file that would pass every check: the link's target is not where we look.
    target = plant_secrets(tmp_path / "elsewhere")
    instance.mkdir(mode=0o700)
    (instance / "secrets.toml").symlink_to(target)

    assert_refused(f"{instance / 'secrets.toml'} is a symbolic link", "regular file")


def test_secrets_file_that_is_a_fifo_is_refused_without_waiting(instance: Path) -> None:
    instance.mkdir(mode=0o700)
    os.mkfifo(instance / "secrets.toml", 0o600)

    assert_refused("is not a regular file")


def test_refused_secrets_stop_create_app_too(instance: Path) -> None:
    plant_secrets(instance, file_mode=0o666)

    with pytest.raises(ConfigError, match="can be written by other users"):
        create_app()


def _me() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def production(**settings: object) -> dict[str, object]:
    """Overrides for a production app that starts."""
    return {
        "ENV": "production",
        "SECRET_KEY": GOOD_KEY,
        "TRUSTED_HOSTS": ["app.example.com"],
        "DATABASE_URL": "postgresql://app@db.example.com/app",
        **settings,
    }


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({}, "session"),
        (production(), "__Host-session"),
        ({"SESSION_COOKIE_SECURE": True}, "__Host-session"),
        (production(SESSION_COOKIE_DOMAIN="example.com"), "__Secure-session"),
        (production(SESSION_COOKIE_PATH="/app"), "__Secure-session"),
        (production(SESSION_COOKIE_NAME="myapp"), "myapp"),
        ({"SESSION_COOKIE_NAME": "myapp"}, "myapp"),
        ({"SESSION_COOKIE_NAME": "__Host-s", "SESSION_COOKIE_SECURE": True}, "__Host-s"),
        (production(SESSION_COOKIE_NAME="__Secure-s", SESSION_COOKIE_PATH="/app"), "__Secure-s"),
    ],
    ids=[
        "development",
        "production",
        "secure",
        "domain",
        "path",
        "production-named",
        "development-named",
        "host-prefix-named",
        "secure-prefix-named",
    ],
)
def test_session_cookie_name_is_derived_unless_configured(
    overrides: dict[str, object], name: str
) -> None:
    assert load_config(overrides)["SESSION_COOKIE_NAME"] == name


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"SESSION_COOKIE_NAME": "__Host-s"}, "needs a Secure cookie"),
        ({"SESSION_COOKIE_NAME": "__host-s"}, "needs a Secure cookie"),
        ({"SESSION_COOKIE_NAME": "__Secure-s"}, "needs a Secure cookie"),
        (
            production(SESSION_COOKIE_NAME="__Host-s", SESSION_COOKIE_SECURE=False),
            "needs a Secure cookie",
        ),
        (
            production(SESSION_COOKIE_NAME="__Host-s", SESSION_COOKIE_DOMAIN="example.com"),
            "needs Path=/ and no Domain",
        ),
        (
            production(SESSION_COOKIE_NAME="__Host-s", SESSION_COOKIE_PATH="/app"),
            "needs Path=/ and no Domain",
        ),
        ({"SESSION_COOKIE_NAME": ""}, "must be a cookie name"),
        ({"SESSION_COOKIE_NAME": "a b"}, "must be a cookie name"),
        ({"SESSION_COOKIE_NAME": "a;b=c"}, "must be a cookie name"),
        ({"SESSION_COOKIE_NAME": 5}, "must be a cookie name"),
    ],
    ids=[
        "host-without-secure",
        "host-any-case",
        "secure-without-secure",
        "production-secure-off",
        "host-with-domain",
        "host-with-path",
        "empty",
        "space",
        "separator",
        "number",
    ],
)
def test_session_cookie_name_browsers_would_drop_is_refused(
    overrides: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(overrides)

    assert expected in caught.value.message
    assert len(caught.value.message.splitlines()) == 1


# Fair shares of the hashing line and IPv6 network limits (issue 12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HASHING_PLACES_PER_CLIENT = 0\n", "HASHING_PLACES_PER_CLIENT must be a positive"),
        ("HASHING_PLACES_PER_CLIENT = 11\n", r"at most HASHING_CONCURRENCY \+ HASHING_QUEUE"),
        ("LOGIN_FAILURES_PER_IPV6_56 = 201\n", r"at most 4 x LOGIN_FAILURES_PER_ADDRESS \(200\)"),
        ("LOGIN_FAILURES_PER_IPV6_48 = 801\n", r"at most 16 x LOGIN_FAILURES_PER_ADDRESS"),
        ("LOGIN_FAILURES_PER_IPV6_48 = 0\n", "LOGIN_FAILURES_PER_IPV6_48 must be a positive"),
        ('LOGIN_FAILURES_PER_IPV6_56 = "many"\n', "LOGIN_FAILURES_PER_IPV6_56 must be"),
        (
            "LOGIN_FAILURES_PER_ADDRESS = 5\nLOGIN_FAILURES_PER_IPV6_56 = 21\n",
            r"at most 4 x LOGIN_FAILURES_PER_ADDRESS \(20\)",
        ),
    ],
)
def test_hashing_shares_and_ipv6_limits_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, message: str
) -> None:
    monkeypatch.setenv("QUARTAPP_CONFIG", str(write(tmp_path / "bad.toml", text)))

    with pytest.raises(ConfigError, match=message):
        load_config()


def test_ipv6_network_limits_default_to_4x_and_16x_the_address_limit() -> None:
    default = load_config()
    smaller = load_config({"LOGIN_FAILURES_PER_ADDRESS": 10, "LOGIN_FAILURES_PER_IPV6_56": 30})

    assert default["LOGIN_FAILURES_PER_IPV6_56"] == 4 * default["LOGIN_FAILURES_PER_ADDRESS"]
    assert default["LOGIN_FAILURES_PER_IPV6_48"] == 16 * default["LOGIN_FAILURES_PER_ADDRESS"]
    assert (smaller["LOGIN_FAILURES_PER_IPV6_56"], smaller["LOGIN_FAILURES_PER_IPV6_48"]) == (
        30,
        160,
    )


# Unknown names, the allow-list and the table (issue 14 item 3)


@pytest.mark.parametrize(
    ("variable", "suggestion"),
    [
        ("QUARTAPP_PASWORD_MIN_LENGTH", "QUARTAPP_PASSWORD_MIN_LENGTH"),
        ("QUARTAPP_LOGIN_FAILURE_PER_USER", "QUARTAPP_LOGIN_FAILURES_PER_USER"),
        ("QUARTAPP_SECRETKEY", "QUARTAPP_SECRET_KEY"),
        ("QUARTAPP_TRUSTED_HOST", "QUARTAPP_TRUSTED_HOSTS"),
        ("QUARTAPP_SESSION_COOKIE_SECURED", "QUARTAPP_SESSION_COOKIE_SECURE"),
        ("QUARTAPP_ENVIRONMENT", "QUARTAPP_ENV"),
        ("QUARTAPP_INSTANCE_DIR", "QUARTAPP_INSTANCE_PATH"),
        ("QUARTAPP_CONFIG_FILE", "QUARTAPP_CONFIG"),
    ],
)
def test_an_unknown_environment_variable_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, suggestion: str
) -> None:
    monkeypatch.setenv(variable, "a-value-that-may-be-secret")

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert caught.value.message == f"unknown setting {variable}; did you mean {suggestion}?"


def test_following_the_hint_sets_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARTAPP_PASWORD_MIN_LENGTH", "40")
    with pytest.raises(ConfigError) as caught:
        load_config()
    suggestion = caught.value.message.rpartition("did you mean ")[2].rstrip("?")

    # The hint names the variable as it must be set: setting it takes effect.
    monkeypatch.delenv("QUARTAPP_PASWORD_MIN_LENGTH")
    monkeypatch.setenv(suggestion, "40")

    assert load_config()["PASSWORD_MIN_LENGTH"] == 40


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("PASWORD_MIN_LENGTH", "PASSWORD_MIN_LENGTH"),
        ("LOGIN_FAILURE_PER_USER", "LOGIN_FAILURES_PER_USER"),
        ("TRUSTED_HOST", "TRUSTED_HOSTS"),
        ("SECRET_KEYS_FALLBACK", "SECRET_KEY_FALLBACKS"),
        ("SESSION_COOKIE_DOMAINS", "SESSION_COOKIE_DOMAIN"),
    ],
)
@pytest.mark.parametrize("source", ["config.toml", "secrets.toml"])
def test_an_unknown_file_key_is_refused_with_the_closest_name_and_the_file(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    instance: Path,
    source: str,
    key: str,
    suggestion: str,
) -> None:
    if source == "config.toml":
        path = write(tmp_path / "config.toml", f"{key} = 3\n")
        monkeypatch.setenv("QUARTAPP_CONFIG", str(path))
    else:
        path = plant_secrets(instance)
        path.write_text(f"{key} = 3\n")

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert caught.value.message == f"unknown setting {key} in {path}; did you mean {suggestion}?"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("XYZZY", "unknown setting {}; the settings are listed in docs/configuration.md"),
        ("SERVER_NAME", "setting {} is not supported; host names go in TRUSTED_HOSTS"),
        ("WTF_CSRF_ENABLED", "setting {} is not supported; CSRF protection cannot be switched"),
        ("PERMANENT_SESSION_LIFETIME", "setting {} is not supported; it follows REMEMBER_ME_DAYS"),
    ],
)
def test_names_with_no_close_setting_or_not_supported_say_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, message: str
) -> None:
    monkeypatch.setenv(f"QUARTAPP_{name}", "false")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert caught.value.message.startswith(message.format(f"QUARTAPP_{name}"))

    monkeypatch.delenv(f"QUARTAPP_{name}")
    path = write(tmp_path / "c.toml", f"{name} = false\n")
    monkeypatch.setenv("QUARTAPP_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert caught.value.message.startswith(message.format(f"{name} in {path}"))


def test_instance_path_and_config_file_cannot_be_set_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "c.toml", 'INSTANCE_PATH = "/srv"\n')
    monkeypatch.setenv("QUARTAPP_CONFIG", str(path))

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert caught.value.message == (
        f"setting INSTANCE_PATH in {path} is not supported; "
        "set QUARTAPP_INSTANCE_PATH in the environment instead"
    )


def test_a_typo_in_overrides_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="did you mean PASSWORD_MIN_LENGTH"):
        load_config({"PASWORD_MIN_LENGTH": 20})


def test_variables_that_say_where_settings_are_still_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("QUARTAPP_INSTANCE_PATH", str(elsewhere))
    monkeypatch.setenv(
        "QUARTAPP_CONFIG", str(write(tmp_path / "c.toml", "REMEMBER_ME_DAYS = 2\n"))
    )
    monkeypatch.setenv("QUARTAPP_ENV", "development")

    config = load_config()

    assert (config["INSTANCE_PATH"], config["REMEMBER_ME_DAYS"], config["ENV"]) == (
        str(elsewhere),
        2,
        "development",
    )


ALLOWED = {
    "SESSION_COOKIE_DOMAIN": ("example.com", "example.com"),
    "SESSION_COOKIE_PATH": ("/app", "/app"),
    "APPLICATION_ROOT": ("/app", "/app"),
    "PREFERRED_URL_SCHEME": ("https", "https"),
    "SEND_FILE_MAX_AGE_DEFAULT": ("600", 600),
    "PROPAGATE_EXCEPTIONS": ("false", False),
    "WTF_CSRF_SSL_STRICT": ("false", False),
}


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_allow_listed_framework_settings_reach_quart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    raw, value = ALLOWED[name]
    monkeypatch.setenv(f"QUARTAPP_{name}", raw)

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})

    assert app.config[name] == value
    # Only what is set is passed on: Quart's own default stands otherwise.
    monkeypatch.delenv(f"QUARTAPP_{name}")
    assert name not in load_config()


def test_the_configuration_page_lists_every_setting_and_the_allow_list() -> None:
    page = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    settings = page.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    allowed = page.split("\n## The allow-list\n", 1)[1].split("\n## ", 1)[0]

    assert set(ALLOWED) == {row.name for row in FRAMEWORK}
    for rows, section in ((ROWS, settings), (FRAMEWORK, allowed)):
        for row in rows:
            line = f"| `{row.name}`"
            assert line in section, f"{row.name} is not in docs/configuration.md"
            assert f"`QUARTAPP_{row.name}`" in section, row.name


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("QUARTAPP_PREFERRED_URL_SCHEME", "ftp", "must be 'http' or 'https', not 'ftp'"),
        ("QUARTAPP_SESSION_COOKIE_PATH", "app", "must be a path starting with /, not 'app'"),
        ("QUARTAPP_WTF_CSRF_SSL_STRICT", "no", "must be true or false, not 'no'"),
        ("QUARTAPP_SESSION_COOKIE_SAMESITE", "None", "must be 'Lax' or 'Strict', not 'None'"),
        ("QUARTAPP_INITIAL_ADMIN", "0", "must be true or false, not 0"),
    ],
)
def test_allow_listed_and_newly_typed_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, message: str
) -> None:
    monkeypatch.setenv(variable, raw)

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert caught.value.message == (
        f"{variable.removeprefix('QUARTAPP_')} {message} (from {variable})"
    )


def test_a_wrong_value_says_which_file_it_came_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "c.toml", "REMEMBER_ME_DAYS = 0\n")
    monkeypatch.setenv("QUARTAPP_CONFIG", str(path))

    with pytest.raises(ConfigError) as caught:
        load_config()

    assert (
        caught.value.message == f"REMEMBER_ME_DAYS must be a positive integer, not 0 (from {path})"
    )


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("SECRET_KEY", 4127713301, "an int"),
        ("WTF_CSRF_SECRET_KEY", ["s3cr3t-csrf"], "a list"),
        ("METRICS_TOKEN", "s3cr3t-token", "a str of 12 characters"),
        ("SECRET_KEY_FALLBACKS", ["s3cr3t-old", 5], "a list with an item that is not a string"),
        ("DATABASE_URL", 5.5, "a float"),
        ("DATABASE_LISTEN_URL", "mysql://app:s3cr3t@db/app", "a mysql:// URL"),
    ],
)
def test_a_refused_secret_shows_only_the_kind_of_mistake(
    name: str, value: object, shown: str
) -> None:
    assert BY_NAME[name].secret

    with pytest.raises(ConfigError) as caught:
        load_config({name: value})

    assert f", not {shown}" in caught.value.message
    assert "s3cr3t" not in caught.value.message
    assert "4127713301" not in caught.value.message


def test_string_settings_from_the_environment_are_not_parsed_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = "1" * 40  # JSON would make it a number, and refuse it
    monkeypatch.setenv("QUARTAPP_METRICS_TOKEN", token)
    monkeypatch.setenv("QUARTAPP_SESSION_COOKIE_NAME", "1234")
    monkeypatch.setenv("QUARTAPP_LOG_LEVEL", "WARNING")

    config = load_config()

    assert (config["METRICS_TOKEN"], config["SESSION_COOKIE_NAME"]) == (token, "1234")


def test_an_empty_environment_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUARTAPP_REMEMBER_ME_DAYS", "")
    monkeypatch.setenv("QUARTAPP_SESSION_COOKIE_NAME", "")

    config = load_config()

    assert config["REMEMBER_ME_DAYS"] == DEFAULTS["REMEMBER_ME_DAYS"]
    assert config["SESSION_COOKIE_NAME"] == "session"


def test_every_default_passes_its_own_check() -> None:
    for row in ROWS:
        assert row.kind.accepts(row.default), row.name
        assert row.meaning, row.name
        assert "\n" not in row.meaning, row.name


def test_every_setting_is_declared_once_by_the_base_or_one_feature() -> None:
    names = [row.name for row in SETTINGS + FRAMEWORK] + [
        row.name for part in PARTS for row in part.rows
    ]

    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert {part.section for part in PARTS} >= {AuthSettings, PasskeySettings, MetricsSettings}


def test_a_feature_row_named_like_another_is_refused() -> None:
    twice = Part("Twice", (BY_NAME["ENV"],), Settings)

    with pytest.raises(ConfigError, match="setting ENV is declared twice"):
        table([*PARTS, twice])


@pytest.mark.parametrize(
    ("rows", "section"),
    [(SETTINGS, Settings), *((part.rows, part.section) for part in PARTS)],
    ids=["base", *(part.section.__name__ for part in PARTS)],
)
def test_every_row_is_a_field_of_exactly_its_own_typed_section(
    rows: tuple[Setting, ...], section: type[Section]
) -> None:
    sections: list[type[Section]] = [Settings, *(part.section for part in PARTS)]
    for row in rows:
        owners = [s for s in sections if row.name.lower() in {f.name for f in fields(s)}]
        assert owners == [section], f"{row.name} is a field of {owners}, not of {section}"


async def test_the_app_reads_each_section_built_once_from_its_settings(tmp_path: Path) -> None:
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
            "TRUSTED_HOSTS": ["localhost", "127.0.0.1"],
            "SECRET_KEY_FALLBACKS": ["o" * 43],
            "PASSWORD_MIN_LENGTH": 20,
            "LOGIN_FAILURES_PER_ADDRESS": 10,
            "PASSKEYS_PER_USER_MAX": 3,
            "METRICS_TOKEN": "m" * 32,
        }
    )

    site, auth = of(app), auth_settings.of(app)
    assert site.trusted_hosts == ("localhost", "127.0.0.1")  # a tuple: frozen through
    assert site.secret_key_fallbacks == ("o" * 43,)
    assert site.sqlalchemy_database_url == f"sqlite+aiosqlite:///{tmp_path}/x.db"
    assert site.session_cookie_name == "session"  # derived
    assert auth.site == site
    assert auth.password_min_length == 20
    assert auth.login_failures_per_ipv6_56 == 40  # derived: 4 x the address limit
    assert passkey_settings.of(app).passkeys_per_user_max == 3
    assert metrics_settings.of(app).enabled
    async with app.app_context():
        assert current() is site
        assert auth_settings.current() is auth
    with pytest.raises(FrozenInstanceError):
        site.env = "production"  # type: ignore[misc]


def test_the_settings_package_names_no_feature() -> None:
    # Neither an import nor a string that could select a feature's code: the parts are
    # handed in by quartapp.setting_parts().
    for path in (Path(__file__).parents[2] / "quartapp" / "settings").glob("*.py"):
        text = path.read_text()
        for name in FEATURES:
            named = re.compile(rf"(quartapp\.|\.\.|from \.)({name})\b|[\"']{name}[.\"']")
            assert not named.search(text), f"{path.name} names the feature {name}"


def test_the_username_limit_is_the_columns_size() -> None:
    assert BY_NAME["USERNAME_MAX_LENGTH"].kind.accepts(USERNAME_COLUMN)
    assert not BY_NAME["USERNAME_MAX_LENGTH"].kind.accepts(USERNAME_COLUMN + 1)


# Loading writes nothing


def tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_loading_settings_writes_no_file(tmp_path: Path, instance: Path, folder: str) -> None:
    if folder == "empty":
        instance.mkdir(mode=0o700)
    before = tree(tmp_path)

    config = load_config()

    assert tree(tmp_path) == before
    assert config["ENV"] == "development"
    assert config["SECRET_KEY"] is None  # bootstrap.prepare_instance makes one


def test_a_refused_production_start_writes_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    before = tree(tmp_path)

    with pytest.raises(ConfigError, match="SECRET_KEY is missing in production"):
        prepare_instance(parts=PARTS)

    assert tree(tmp_path) == before


def test_the_first_run_makes_keys_once_and_loads_them(instance: Path) -> None:
    first = prepare_instance(parts=PARTS)
    written = (instance / "secrets.toml").read_text()
    again = prepare_instance(parts=PARTS)

    assert first["SECRET_KEY"] == again["SECRET_KEY"]
    assert first["WTF_CSRF_SECRET_KEY"] != first["SECRET_KEY"]
    assert (instance / "secrets.toml").read_text() == written
    assert tree(instance) == ["secrets.toml"]


# One line at every front door


def test_the_server_refuses_an_unknown_name_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUARTAPP_PASWORD_MIN_LENGTH", "3")

    status = serve.main(["quartapp:app"])

    assert status == 1
    assert capsys.readouterr().err == (
        "quartapp: refusing to start: unknown setting QUARTAPP_PASWORD_MIN_LENGTH; "
        "did you mean QUARTAPP_PASSWORD_MIN_LENGTH?\n"
    )


def test_the_cli_refuses_an_unknown_name_in_one_error_line(tmp_path: Path) -> None:
    env = {**os.environ, "QUARTAPP_LOGIN_FAILURE_PER_USER": "1000"}

    result = subprocess.run(
        [sys.executable, "-m", "quart", "--app", "quartapp", "users", "list"],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: unknown setting QUARTAPP_LOGIN_FAILURE_PER_USER; "
        "did you mean QUARTAPP_LOGIN_FAILURES_PER_USER?\n"
    )
