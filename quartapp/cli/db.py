"""``quart --app quartapp db ...``: migrate the schema and prune old rows."""

from __future__ import annotations

import click

from ..auth import prune
from ..db import connect, schema
from .running import load_auth_settings, load_settings, run_on_database

db_cli = click.Group("db", help="Migrate the database schema and prune old rows.")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    before, after = run_on_database(schema.upgrade(load_settings(), revision))
    if before == after:
        click.echo(f"database schema is at {after}; nothing to apply")
    else:
        click.echo(f"database schema upgraded from {before or 'empty'} to {after}")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def downgrade_command(revision: str) -> None:
    """Undo migrations down to REVISION (default: one step; 'base' for all)."""
    before, after = run_on_database(schema.downgrade(load_settings(), revision))
    click.echo(f"database schema downgraded from {before or 'empty'} to {after}")


@db_cli.command("current")
def current_command() -> None:
    """Show the database's revision and whether it is the newest."""
    revision = run_on_database(schema.current(load_settings()))
    newest = schema.head()
    if revision == newest:
        click.echo(f"{revision} (head)")
    else:
        click.echo(f"{revision or 'empty'} (head is {newest}; run db upgrade)")


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the change is and why.")
def revision_command(message: str) -> None:
    """Write a migration for what the models changed (for developers)."""
    path = run_on_database(schema.revision(load_settings(), message))
    click.echo(f"wrote {path}; review it, then run db upgrade")


@db_cli.command("prune")
def prune_command() -> None:
    """Delete expired logins, stale throttle counters and expired passkey challenges."""
    config = load_auth_settings()

    async def work() -> prune.Pruned:
        async with connect(config.site) as store:
            return await prune.prune_all(store.sessionmaker, config)

    done = run_on_database(work())
    others = "".join(
        f", {count} {name}" for name, count in done.items() if name not in ("logins", "counters")
    )
    click.echo(
        f"pruned {done['logins']} expired login(s) and {done['counters']} throttle "
        f"counter(s){others}"
    )


@click.command("init-db")
@click.pass_context
def init_db_command(context: click.Context) -> None:
    """Same as ``db upgrade`` (kept for old release scripts)."""
    context.invoke(upgrade_command)
