"""Configuration: the order of sources, derived settings and production refusals."""

from __future__ import annotations

import os
import re
import stat
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from quartapp import create_app
from quartapp.config import DEFAULTS, ConfigError, database_url, load_config

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
    with (Path(__file__).parents[1] / "config.toml").open("rb") as handle:
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
        ('SECRET_KEY_FALLBACKS = "old"\n', "SECRET_KEY_FALLBACKS must be a list"),
        ('ENV = "staging"\n', "'development' or 'production'"),
        ('DATABASE_URL = "mysql://db/x"\n', "not supported"),
        ("PASSWORD_MIN_SCORE = 5\n", "PASSWORD_MIN_SCORE must be an integer from 0 to 4"),
        ("PASSWORD_MIN_SCORE = true\n", "PASSWORD_MIN_SCORE must be an integer from 0 to 4"),
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


def test_production_refuses_readme_sample_key(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    samples = re.findall(r"config:set SECRET_KEY=([^\s$\"]+)", readme)
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    monkeypatch.setenv("QUARTAPP_TRUSTED_HOSTS", '["app.example.com"]')

    assert samples, "the README shows a sample SECRET_KEY"
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
        return str(load_config()["SECRET_KEY"])

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
