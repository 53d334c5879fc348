"""``python -m quartapp.serve [hypercorn's arguments]``: check the settings, then serve.

The Procfile's web line and ``make run`` start hypercorn through this, with
hypercorn's own arguments unchanged (``--config hypercorn.toml ... quartapp:app``). It
does two things in hypercorn's parent process, before any worker exists:

1. **Refuse bad settings loudly.** It loads and validates the settings exactly as the
   app will (on a fresh development checkout, after generating the keys that the
   workers then read: :func:`.bootstrap.prepare_instance`). A bad ``SECRET_KEY``, a
   missing ``DATABASE_URL`` in production and the like end here with the app's one
   ``quartapp: refusing to start: ...`` line and exit status 1, within a second and
   with no traceback. Started directly, hypercorn 0.18
   spawns its workers first; each prints the line plus a traceback, and the parent then
   exits 0 (its final ``_join_exited()`` runs on an emptied worker list and overwrites
   the failing status: pgjones/hypercorn#269), so a PaaS that restarts a dyno after a
   config change would crash-loop with nothing to show.
2. **Give the workers one metrics folder.** With ``METRICS_TOKEN`` set it creates a
   fresh folder for this run, names it in ``PROMETHEUS_MULTIPROC_DIR`` for the workers
   (they are spawned, so they inherit the environment) and removes it when hypercorn
   returns; see :mod:`.metrics`. A ``PROMETHEUS_MULTIPROC_DIR`` already set is the
   folder the per-run folder is made in.

Then it runs hypercorn's own command line in this same process, so signals, exit
status and every option behave as with ``hypercorn`` itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator

from . import make_instance_folder, setting_parts
from .bootstrap import prepare_instance
from .metrics.settings import MetricsSettings
from .settings import ConfigError

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_folder(config: MetricsSettings) -> Iterator[str | None]:
    """A fresh folder for this run's metrics, named in the environment, then removed."""
    if not config.enabled:
        yield None
        return
    # A folder of this run only: files left by an earlier run would add its counts.
    folder = tempfile.mkdtemp(prefix="quartapp-metrics-", dir=os.environ.get(MULTIPROCESS_DIR))
    os.environ[MULTIPROCESS_DIR] = folder
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Validate the settings, then run hypercorn with ``argv``; the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
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
        print(f"quartapp: refusing to start: {error.message}", file=sys.stderr)
        return 1
    # Imported here: the settings are checked first, however hypercorn's import fares.
    from hypercorn.__main__ import main as hypercorn_main

    with metrics_folder(MetricsSettings.from_config(config)):
        # hypercorn reads sys.argv when given an empty list, so give it what it parses.
        return hypercorn_main(arguments or ["--help"])


if __name__ == "__main__":
    raise SystemExit(main())
