"""``python -m bench``: serve quartapp and the reference apps, drive them with wrk, report.

Every app runs with one worker on 127.0.0.1. Each round measures every app in every
scenario once (``scenarios.py``); the report gives the median of the rounds, the ratio
of quartapp to each anchor and whether the targets of issue 13 are met (``report.py``).
It reports; a missed target does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench import many, pg, report, wrk
from bench.scenarios import ALL_SCENARIOS, FLASK_LOGIN, QUARTAPP, TUTORIAL, Bench, Settings
from bench.servers import BenchError

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, at least 2; the median is reported"
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=None,
        help=f"seconds per wrk run (default: 8, and {many.SECONDS} for the many-users "
        "scenario, so that every login's last_seen falls due within it)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=many.USERS,
        help="users signed in for the many-users scenario",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (-c)")
    parser.add_argument(
        "--scenarios",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_SCENARIOS)} (default: all)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 1 round of 1 s, 10 connections, the apps of a step measured at "
        "once; /hello on quartapp and the Flask tutorial unless --scenarios says otherwise",
    )
    args = parser.parse_args(argv)
    chosen = args.scenarios or ("hello" if args.quick else ",".join(ALL_SCENARIOS))
    scenarios = tuple(name.strip() for name in chosen.split(",") if name.strip())
    unknown = sorted(set(scenarios) - set(ALL_SCENARIOS))
    if unknown or not scenarios:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; pick from {ALL_SCENARIOS}")
    if args.quick:
        # Flask-Login is the many-users scenario's anchor: started only when it runs.
        many_apps = {FLASK_LOGIN} if "many" in scenarios else set()
        apps = frozenset({QUARTAPP, TUTORIAL, *many_apps, *pg.APPS})
        load = wrk.Load(1, 10, 1)
        return Settings(1, load, scenarios, apps, args.output, 1, args.users, together=True)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (a median of one is no median); see --quick")
    if (args.duration is not None and args.duration < 1) or args.threads < 1:
        parser.error("--duration and --threads must be at least 1")
    if args.users < 1:
        parser.error("--users must be at least 1")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return Settings(
        args.rounds,
        wrk.Load(args.threads, args.connections, args.duration or 8),
        scenarios,
        None,
        args.output,
        args.duration or many.SECONDS,
        args.users,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the bench; 0 when it measured everything, whatever the targets say."""
    settings = parse_args(argv)
    if not wrk.available():
        print("error: wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    bench = Bench(settings)
    try:
        bench.measure()
    except (BenchError, wrk.WrkError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    figures = report.build(bench)
    report.print_report(figures)
    settings.output.parent.mkdir(parents=True, exist_ok=True)
    settings.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwrote {settings.output}")
    return 0
