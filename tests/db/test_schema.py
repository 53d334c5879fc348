"""Migrations: they match the models, run both ways, and adopt pre-migration databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from quart.testing import QuartCliRunner
from quart.testing.app import LifespanError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from quartapp import create_app, load_config
from quartapp.db import Base, engine_options, revisions, schema
from quartapp.settings import ConfigError, Settings, of
from tests.conftest import DATABASES, aquery, make_settings, require_postgres, sqlite_url

# Rows in the tables quartapp's create_all made before it had migrations.
LEGACY_ROWS = [
    "INSERT INTO users (id, username, password_hash, created_at) "
    "VALUES (1, 'kept', 'x', '2026-01-01 00:00:00')",
    "INSERT INTO logins (id, user_id, remember, created_at) "
    "VALUES ('abc', 1, true, '2026-11-01 00:00:00')",
]


@pytest.fixture(params=DATABASES)
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings for a database with no tables at all, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield load_config(make_settings(tmp_path, DATABASE_URL=sqlite_url(tmp_path)))
        return
    server = require_postgres(request.getfixturevalue("postgres_server"))
    name = server.new_database_name()
    server.psql(f"CREATE DATABASE {name}")
    try:
        yield load_config(make_settings(tmp_path, DATABASE_URL=server.url(name)))
    finally:
        server.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def tables(config: dict[str, Any]) -> set[str]:
    rows = await aquery(
        config,
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        if config["DATABASE_URL"].startswith("sqlite")
        else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    )
    return {name for (name,) in rows}


def typed(config: dict[str, Any]) -> Settings:
    """The typed settings the schema's functions take."""
    return Settings.from_config(config)


def differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_match_the_models(empty: dict[str, Any]) -> None:
    await schema.upgrade(typed(empty))

    # Alembic's autogenerate check: what it would write for the models against the
    # migrated database. A model changed without a revision shows up here.
    diff = await schema._run(typed(empty), differences)

    assert diff == []


async def test_upgrade_downgrade_upgrade_round_trip(empty: dict[str, Any]) -> None:
    assert await schema.upgrade(typed(empty)) == (None, schema.head())
    assert await tables(empty) >= {"users", "logins", "throttle_counters", "alembic_version"}

    assert await schema.downgrade(typed(empty), "base") == (schema.head(), "base")
    assert await tables(empty) <= {"alembic_version"}

    assert await schema.upgrade(typed(empty)) == (None, schema.head())
    assert await schema.current(typed(empty)) == schema.head()


async def test_an_upgrade_at_the_head_reads_the_revision_and_leaves_alembic_alone(
    empty: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    await schema.upgrade(typed(empty))

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("Alembic ran an upgrade with nothing to apply")

    monkeypatch.setattr(command, "upgrade", refuse)

    assert await schema.upgrade(typed(empty)) == (schema.head(), schema.head())


async def test_a_database_made_before_migrations_is_stamped_and_upgraded(
    empty: dict[str, Any],
) -> None:
    # Revision 0001 is what create_all made (it was generated from those models);
    # without its version table the database looks exactly like an old deploy's.
    await schema.upgrade(typed(empty), schema.BASELINE)
    await aquery(empty, "DROP TABLE alembic_version")
    for statement in LEGACY_ROWS:
        await aquery(empty, statement)

    before, after = await schema.upgrade(typed(empty))

    assert (before, after) == (schema.BASELINE, schema.head())
    assert await aquery(empty, "SELECT username FROM users") == [("kept",)]
    # The old login survives with limits filled in from the defaults.
    assert [row[0] for row in await aquery(empty, "SELECT id, expires_at FROM logins")] == ["abc"]
    assert await schema._run(typed(empty), differences) == []


async def test_workers_upgrading_together_apply_each_revision_once(
    empty: dict[str, Any],
) -> None:
    results = await asyncio.gather(*(schema.upgrade(typed(empty)) for _ in range(4)))

    # One of them did the work; the others found it done.
    assert sorted(results, key=str) == sorted(
        [(None, schema.head())] + [(schema.head(), schema.head())] * 3, key=str
    )


def test_db_commands_upgrade_show_and_downgrade(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    runner: QuartCliRunner = create_app(settings).test_cli_runner()

    upgraded = runner.invoke(args=["db", "upgrade"])
    current = runner.invoke(args=["db", "current"])
    again = runner.invoke(args=["db", "upgrade"])
    down = runner.invoke(args=["db", "downgrade"])
    behind = runner.invoke(args=["db", "current"])

    assert upgraded.exit_code == 0, upgraded.output
    assert f"upgraded from empty to {schema.head()}" in upgraded.output
    assert current.output.strip() == f"{schema.head()} (head)"
    assert "nothing to apply" in again.output
    assert down.exit_code == 0
    assert "downgraded" in down.output
    assert "run db upgrade" in behind.output


def test_init_db_is_upgrade_and_never_claims_without_checking(tmp_path: Path) -> None:
    runner = create_app(make_settings(tmp_path)).test_cli_runner()

    first = runner.invoke(args=["init-db"])
    second = runner.invoke(args=["init-db"])

    assert f"upgraded from empty to {schema.head()}" in first.output
    assert f"at {schema.head()}; nothing to apply" in second.output


def test_an_unknown_revision_is_a_one_line_error(tmp_path: Path) -> None:
    runner = create_app(make_settings(tmp_path)).test_cli_runner()

    result = runner.invoke(args=["db", "upgrade", "nonsense"])

    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "Traceback" not in result.output


async def test_development_server_upgrades_on_start(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    async with app.test_app():
        pass

    assert await schema.current(of(app)) == schema.head()


async def test_production_server_leaves_the_schema_to_the_release_step(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, ENV="production", TESTING=False))

    # It does not migrate: it refuses an empty database, naming the release step.
    with pytest.raises(LifespanError, match=r"no schema yet, .*`quart --app quartapp db upgrade`"):
        async with app.test_app():
            pass

    assert "users" not in await tables(dict(app.config))


async def test_production_server_refuses_a_schema_behind_the_code(
    empty: dict[str, Any], tmp_path: Path
) -> None:
    await schema.upgrade(typed(empty), "0006")
    production = make_settings(
        tmp_path, DATABASE_URL=empty["DATABASE_URL"], ENV="production", TESTING=False
    )

    # What a worker's startup raises (the web line's parent refuses first: test_server.py).
    with pytest.raises(ConfigError) as refused:
        await schema.check_revision(Settings.from_config(load_config(production)))

    assert refused.value.message == (
        f"the database's schema is at revision 0006, behind this code's {schema.head()}; "
        "run the release step first: `quart --app quartapp db upgrade` (the Procfile's "
        "release line)"
    )
    assert await schema.current(typed(empty)) == "0006"


async def test_production_server_starts_on_a_schema_at_the_codes_head(
    empty: dict[str, Any], tmp_path: Path
) -> None:
    await schema.upgrade(typed(empty))
    app = create_app(
        make_settings(
            tmp_path, DATABASE_URL=empty["DATABASE_URL"], ENV="production", TESTING=False
        )
    )

    async with app.test_app():
        pass

    assert await schema.current(typed(empty)) == schema.head()


def test_a_revision_newer_than_the_code_is_not_behind() -> None:
    # A rollback after a release: the newer revision only added what old code ignores.
    assert schema.behind("9999") is None
    assert schema.behind(schema.head()) is None
    assert schema.behind(None) is not None


def test_migration_scripts_render_offline_is_refused() -> None:
    # env.py runs only on a connection quartapp hands it; it says how to migrate instead.
    with pytest.raises(SystemExit, match="db upgrade"):
        command.upgrade(schema.alembic_config(), "head", sql=True)


def test_db_revision_writes_nothing_to_apply_when_models_match(tmp_path: Path) -> None:
    runner = create_app(make_settings(tmp_path)).test_cli_runner()
    runner.invoke(args=["db", "upgrade"])

    result = runner.invoke(args=["db", "revision", "-m", "nothing changed"])

    assert result.exit_code == 0, result.output
    path = Path(result.output.split()[1].rstrip(";"))
    try:
        text = path.read_text()
        assert path.name.startswith(f"{int(schema.head()) + 1:04d}_nothing_changed")
        assert "pass" in text  # an empty upgrade: the models match the migrations
    finally:
        path.unlink()
        revisions.chain.cache_clear()
        revisions.head.cache_clear()


def test_the_revisions_read_without_alembic_are_alembics() -> None:
    scripts = ScriptDirectory.from_config(schema.alembic_config())

    assert revisions.head() == scripts.get_current_head()
    assert revisions.chain() == {
        script.revision: script.down_revision for script in scripts.walk_revisions()
    }
    assert revisions.known() == {script.revision for script in scripts.walk_revisions()}


async def test_the_database_revision_read_without_alembic_is_alembics(
    empty: dict[str, Any],
) -> None:
    def both(connection: Connection) -> tuple[str | None, str | None]:
        alembics = MigrationContext.configure(connection).get_current_revision()
        return revisions.current_revision(connection), alembics

    async def read() -> tuple[str | None, str | None]:
        url, options = engine_options(typed(empty))
        engine = create_async_engine(url, **options)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(both)
        finally:
            await engine.dispose()

    assert await read() == (None, None)  # no version table yet
    await schema.upgrade(typed(empty), "0006")
    assert await read() == ("0006", "0006")
    await schema.upgrade(typed(empty))
    assert await read() == (schema.head(), schema.head())
    await schema.downgrade(typed(empty), "base")
    assert await read() == (None, None)  # the table is there, empty
