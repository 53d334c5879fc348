"""``python -m quartapp.serve [hypercorn's arguments]``: check the settings, then serve.

The Procfile's web line and ``make run`` start hypercorn through this, with
hypercorn's own arguments unchanged (``--config hypercorn.toml ... quartapp:app``). It
does three things in hypercorn's parent process:

1. **Refuse bad settings loudly, before any worker exists.** A child process loads and
   validates the settings exactly as the app will (on a fresh development checkout,
   after generating the keys that the workers then read:
   :func:`.bootstrap.prepare_instance`). A bad ``SECRET_KEY``, a missing
   ``DATABASE_URL`` in production and the like end here with the app's one
   ``quartapp: refusing to start: ...`` line and exit status 1, with no traceback.
   Started directly, hypercorn 0.18 spawns its workers first; each prints the line plus
   a traceback, and the parent then exits 0 (its final ``_join_exited()`` runs on an
   emptied worker list and overwrites the failing status: pgjones/hypercorn#269), so a
   PaaS that restarts a dyno after a config change would crash-loop with nothing to
   show. The check runs in a child so that this parent, which lives as long as the
   dyno, never imports the app's frameworks: it stays a small fraction of a worker.
2. **Give the workers one metrics folder.** With ``METRICS_TOKEN`` set it creates a
   fresh folder for this run, names it in ``PROMETHEUS_MULTIPROC_DIR`` for the workers
   (they are spawned, so they inherit the environment) and removes it when hypercorn
   returns; see :mod:`.metrics`. A ``PROMETHEUS_MULTIPROC_DIR`` already set is the
   folder the per-run folder is made in.
3. **Replace a worker that dies** instead of stopping them all: hypercorn's command line
   parses the arguments, and :mod:`.supervisor` runs its workers.

Signals, exit status and every option otherwise behave as with ``hypercorn`` itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.connection import Connection
from pathlib import Path

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_folder(enabled: bool) -> Iterator[str | None]:
    """A fresh folder for this run's metrics, named in the environment, then removed."""
    if not enabled:
        yield None
        return
    # A folder of this run only: files left by an earlier run would add its counts.
    folder = tempfile.mkdtemp(prefix="quartapp-metrics-", dir=os.environ.get(MULTIPROCESS_DIR))
    os.environ[MULTIPROCESS_DIR] = folder
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def forget_worker(folder: str, pid: int) -> None:
    """Drop a dead worker's live gauges (its process figures, its share of the queues).

    What ``prometheus_client.multiprocess.mark_process_dead`` does, without importing
    prometheus_client into this long-lived parent: a worker killed outright never
    removes its own files, so its ``pid`` series would stay until the server restarts.
    Counters and histograms stay: their counts still add up.
    """
    for path in Path(folder).glob(f"gauge_live*_{pid}.db"):
        path.unlink(missing_ok=True)


def check_settings(answer: Connection) -> None:
    """In a child process: send back why the settings are refused, or whether metrics are on.

    It sends ``(refusal, metrics_enabled)``: ``refusal`` is the one line to print, or
    None when the settings are good.
    """
    from . import make_instance_folder, setting_parts
    from .bootstrap import prepare_instance
    from .metrics.settings import MetricsSettings
    from .settings import ConfigError

    try:
        # Here, before any worker exists, a fresh checkout gets its development keys.
        config = prepare_instance(parts=setting_parts())
        # The workers would each fail on an instance folder they cannot create.
        make_instance_folder(config["INSTANCE_PATH"])
        # Imported only once the settings are good: it loads SQLAlchemy and Alembic.
        from .db.schema import check_on_start
        from .settings import Settings

        # In production, a schema behind the code: one line naming the release step.
        check_on_start(Settings.from_config(config))
    except ConfigError as error:
        # The same line the app prints when it refuses, so one grep finds both.
        answer.send((f"quartapp: refusing to start: {error.message}", False))
        return
    answer.send((None, MetricsSettings.from_config(config).enabled))


def checked_settings() -> tuple[str | None, bool]:
    """``check_settings`` run in a spawned child: ``(refusal, metrics_enabled)``."""
    context = get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=check_settings, args=(sender,))
    child.start()
    sender.close()  # so that a child that dies unheard ends the read below
    try:
        refusal, metrics_enabled = receiver.recv()
    except EOFError:
        child.join()
        return f"quartapp: refusing to start: the settings check {_ended(child.exitcode)}", False
    finally:
        receiver.close()
    child.join()
    return refusal, metrics_enabled


def _ended(exitcode: int | None) -> str:
    from .supervisor import describe

    return describe(exitcode)


def main(argv: list[str] | None = None) -> int:
    """Validate the settings, then run hypercorn with ``argv``; the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    refusal, metrics_enabled = checked_settings()
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 1
    # Imported here: the settings are checked first, however hypercorn's import fares.
    import hypercorn.__main__ as hypercorn_cli

    from . import supervisor

    # hypercorn's command line builds the Config from the arguments and the file, then
    # calls ``run``: its run stops every worker when one dies, the supervisor replaces
    # it. (Upstream, a ``run`` that restarts dead workers would let this line go.)
    # hypercorn's __main__ imports run without re-exporting it; the name is what main calls.
    hypercorn_cli.run = supervisor.serve  # type: ignore[attr-defined]
    with metrics_folder(metrics_enabled) as folder:
        if folder is not None:
            supervisor.worker_ended.append(functools.partial(forget_worker, folder))
        # hypercorn reads sys.argv when given an empty list, so give it what it parses.
        return hypercorn_cli.main(arguments or ["--help"])


if __name__ == "__main__":
    raise SystemExit(main())
