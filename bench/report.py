"""The figures of a run: medians of its rounds, ratios, targets, a table and JSON.

The targets are issue 13's. The bench reports them as PASS or MISS lines; a missed
target does not fail the run.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bench import many, pg, wrk
from bench.scenarios import (
    FLASK_LOGIN,
    FLASK_WTF,
    MINIMAL_QUART,
    QUARTAPP,
    QUARTAPP_2W,
    QUARTAPP_NICE0,
    TUTORIAL,
)

if TYPE_CHECKING:
    from bench.scenarios import Bench

MIB = 1024 * 1024
RSS_SLACK = 50 * MIB
TITLES = {
    "hello": "authenticated /hello",
    "home": "anonymous /",
    "login": "GET /login",
    **{pg.scenario(delay): pg.title(delay) for delay in pg.DELAYS_MS},
    "storm": "/hello under login storm",
    "signins": "/hello, 8 clients signing in",
    "workers": "/hello, 2 workers",
    many.scenario(None): many.title(None),
    **{many.scenario(delay): many.title(delay) for delay in pg.DELAYS_MS},
}
# (scenario, app, anchor): the app's req/s over the anchor's, at least.
RATIO_TARGETS = {
    ("hello", QUARTAPP, FLASK_LOGIN): 1.2,
    ("hello", QUARTAPP, TUTORIAL): 0.5,
    ("home", QUARTAPP, MINIMAL_QUART): 0.85,
    ("login", QUARTAPP, FLASK_WTF): 1.0,
    (pg.scenario(1), pg.QUARTAPP_PG, pg.FLASK_GTHREAD): 2.0,
    # "Far ahead of sync": meeting 2x gthread would put it near 10x sync (the issue's
    # figures: gthread 4-5x sync at +1 ms), so half of that.
    (pg.scenario(1), pg.QUARTAPP_PG, pg.FLASK_SYNC): 5.0,
    (pg.scenario(0), pg.QUARTAPP_PG, pg.FLASK_SYNC): 1.2,
    (many.scenario(None), QUARTAPP, FLASK_LOGIN): 2.0,
    (many.scenario(1), pg.QUARTAPP_PG, pg.FLASK_GTHREAD): 3.0,
}
# (scenario, app): /hello's p99 over its p50, at most, on both databases.
TAIL_TARGETS = [
    ("hello", QUARTAPP),
    *((pg.scenario(d), pg.QUARTAPP_PG) for d in pg.DELAYS_MS),
    (many.scenario(None), QUARTAPP),
    *((many.scenario(d), pg.QUARTAPP_PG) for d in pg.DELAYS_MS),
]
TAIL_FACTOR = 3.0
STORM_P99_FACTOR = 2.0
# The sign-in storm (8 clients signing in through the form): /hello's p99 against its
# idle p99 at most, its req/s against idle at least, and the logins per second at least
# this share of those of quartapp with its hashes at the loop's priority (HASHING_NICE=0,
# as before the setting), measured in the same rounds.
SIGNINS_P99_FACTOR = 3.0
SIGNINS_RPS_SHARE = 0.5
SIGNINS_LOGINS_SHARE = 0.8


def build(bench: Bench) -> dict[str, Any]:
    """Medians of the rounds, ratios, targets and the raw rounds, for JSON."""
    load = bench.settings.load
    report: dict[str, Any] = {
        "settings": {
            "rounds": bench.settings.rounds,
            "wrk": {
                "threads": load.threads,
                "connections": load.connections,
                "seconds": load.seconds,
            },
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "workers_per_app": 1,
            "pg_delays_ms_each_way": list(pg.DELAYS_MS),
            "many_users": {
                "users": bench.settings.many_users,
                "seconds": bench.settings.many_seconds,
                "sign_in_seconds": {app: round(s, 1) for app, s in bench.many_sign_in.items()},
            },
            # Other work on the machine skews every figure: a busy machine shows here.
            "load_average_1min": {
                "before": round(bench.load_before, 2),
                "after": round(os.getloadavg()[0], 2),
            },
        },
        "skipped": dict(bench.skipped),
        "scenarios": {},
        "targets": [],
    }
    scenarios = report["scenarios"]
    targets = report["targets"]
    for name, per_app in bench.results.items():
        scenarios[name] = {"apps": {app: summary(rounds) for app, rounds in per_app.items()}}
    for (name, app, anchor), minimum in RATIO_TARGETS.items():
        apps = scenarios.get(name, {}).get("apps", {})
        if app in apps and anchor in apps and apps[anchor]["rps"] > 0:
            ratio = apps[app]["rps"] / apps[anchor]["rps"]
            apps[anchor]["ratio"] = round(ratio, 3)
            targets.append(target(f"{TITLES[name]}: {app} / {anchor}", ratio, ">=", minimum))
    for name, app in TAIL_TARGETS:
        figures = scenarios.get(name, {}).get("apps", {}).get(app)
        if figures and figures["p50_ms"] > 0:
            tail = figures["p99_ms"] / figures["p50_ms"]
            targets.append(target(f"{TITLES[name]}: {app} p99 / p50", tail, "<=", TAIL_FACTOR))
    idle = scenarios.get("hello", {}).get("apps", {}).get(QUARTAPP)
    if "storm" in scenarios and bench.hashing is not None and idle:
        targets.append(storm(bench, scenarios["storm"], idle))
    if "signins" in scenarios and idle:
        targets += signin_storm(bench, scenarios["signins"], idle)
    if bench.rss and bench.hashing is not None:
        scenarios["flood"], flood_target = flood(bench)
        targets.append(flood_target)
    if "workers" in scenarios and idle:
        two = scenarios["workers"]["apps"][QUARTAPP_2W]
        two["ratio_to_1_worker"] = round(two["rps"] / idle["rps"], 3) if idle["rps"] else None
    return report


def storm(bench: Bench, data: dict[str, Any], idle: dict[str, Any]) -> dict[str, Any]:
    """Add the storm's logins and hashing figures to ``data``; its target."""
    hashing = bench.hashing
    assert hashing is not None
    under = data["apps"][QUARTAPP]
    factor = under["p99_ms"] / idle["p99_ms"] if idle["p99_ms"] else float("inf")
    data.update(
        idle_p99_ms=idle["p99_ms"],
        p99_factor=round(factor, 3),
        logins=summary(bench.storm_logins),
        hashing={
            "argon2": {
                "memory_kib": hashing.memory_kib,
                "time_cost": hashing.time_cost,
                "parallelism": hashing.parallelism,
            },
            "hashing_concurrency": hashing.concurrency,
            "hash_ms": round(hashing.seconds * 1000, 1),
            "cores": hashing.cores,
            "login_limit_per_s": round(hashing.limit, 1),
        },
    )
    return target("login storm: /hello p99 / idle p99", factor, "<=", STORM_P99_FACTOR)


def signin_storm(bench: Bench, data: dict[str, Any], idle: dict[str, Any]) -> list[dict[str, Any]]:
    """Add the sign-in storm's logins and ratios to ``data``; its targets."""
    for app, figures in data["apps"].items():
        rates = [tally.per_second for tally in bench.signins.get(app, [])]
        figures.update(
            p99_factor=round(figures["p99_ms"] / idle["p99_ms"], 3) if idle["p99_ms"] else None,
            rps_share=round(figures["rps"] / idle["rps"], 3) if idle["rps"] else None,
            logins_per_s=round(statistics.median(rates), 2) if rates else 0.0,
            logins_rounds=[round(rate, 2) for rate in rates],
            busy=sum(tally.busy for tally in bench.signins.get(app, [])),
            failures=sum(len(tally.failures) for tally in bench.signins.get(app, [])),
        )
    data.update(
        idle={key: idle[key] for key in ("rps", "p50_ms", "p99_ms")},
        clients=len(bench.storm_users.get(QUARTAPP, [])),
    )
    shipped = data["apps"][QUARTAPP]
    targets = [
        target(
            "sign-in storm: /hello p99 / idle p99",
            shipped["p99_factor"] or float("inf"),
            "<=",
            SIGNINS_P99_FACTOR,
        ),
        target(
            "sign-in storm: /hello req/s / idle req/s",
            shipped["rps_share"] or 0.0,
            ">=",
            SIGNINS_RPS_SHARE,
        ),
    ]
    before = data["apps"].get(QUARTAPP_NICE0, {}).get("logins_per_s")
    if before:
        ratio = shipped["logins_per_s"] / before
        shipped["logins_ratio"] = round(ratio, 3)
        targets.append(
            target(
                f"sign-in storm: logins/s / {QUARTAPP_NICE0}'s", ratio, ">=", SIGNINS_LOGINS_SHARE
            )
        )
    return targets


def flood(bench: Bench) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flood's memory figures and its target."""
    hashing = bench.hashing
    assert hashing is not None
    idle_rss = bench.idle_rss
    peak_rss = max(r["peak"] for r in bench.rss)
    budget = idle_rss + hashing.concurrency * hashing.memory_kib * 1024 + RSS_SLACK
    data = {
        "logins": summary(bench.flood_logins),
        "idle_rss_mib": round(idle_rss / MIB, 1),
        "before_flood_rss_mib": round(statistics.median(r["before"] for r in bench.rss) / MIB, 1),
        "peak_rss_mib": round(peak_rss / MIB, 1),
        "budget_mib": round(budget / MIB, 1),
        "rounds": [{k: round(v / MIB, 1) for k, v in r.items()} for r in bench.rss],
    }
    return data, target("login flood: peak RSS MiB", peak_rss / MIB, "<=", budget / MIB)


def summary(rounds: list[wrk.Result]) -> dict[str, Any]:
    """The median of each figure over the rounds, and the rounds themselves."""
    return {
        "rps": round(statistics.median(r.rps for r in rounds), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in rounds), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in rounds), 2),
        "errors": sum(r.errors for r in rounds),
        "rounds": [r.as_dict() for r in rounds],
    }


def target(name: str, value: float, op: str, bound: float) -> dict[str, Any]:
    met = value >= bound if op == ">=" else value <= bound
    return {"name": name, "value": round(value, 3), "op": op, "bound": round(bound, 3), "met": met}


# The table


def print_report(report: dict[str, Any]) -> None:
    """The table of figures, then the targets as PASS/MISS lines."""
    header = ("scenario", "app", "req/s", "p50 ms", "p99 ms", "p99/p50", "ratio to it")
    rows: list[tuple[str, ...]] = [header]
    scenarios = report["scenarios"]
    for name, title in TITLES.items():
        apps = scenarios.get(name, {}).get("apps", {})
        subject = next(iter(apps), "")
        for app, figures in apps.items():
            ratio = figures.get("ratio")
            tail = figures["p99_ms"] / figures["p50_ms"] if figures["p50_ms"] else 0.0
            rows.append(
                (
                    title,
                    app,
                    f"{figures['rps']:.1f}",
                    f"{figures['p50_ms']:.1f}",
                    f"{figures['p99_ms']:.1f}",
                    f"{tail:.1f}",
                    f"{subject} {ratio:.2f}x" if ratio is not None else "",
                )
            )
            title = ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print()
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if 2 <= i <= 5 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
    print()
    for line in details(scenarios):
        print(line)
    if any(name.startswith(many.SQLITE) for name in scenarios):
        users = report["settings"]["many_users"]
        took = ", ".join(f"{app} {s:.0f} s" for app, s in users["sign_in_seconds"].items())
        print(
            f"many users: {users['users']} signed in through each app's form ({took}), "
            f"each request with the next one's cookie, {users['seconds']} s per run"
        )
    for name, why in report["skipped"].items():
        print(f"skipped {name}: {why}")
    load = report["settings"]["load_average_1min"]
    print(f"load average (1 min) {load['before']:.1f} before, {load['after']:.1f} after")
    for item in report["targets"]:
        verdict = "PASS" if item["met"] else "MISS"
        print(f"{verdict}  {item['name']}: {item['value']:.2f} {item['op']} {item['bound']:.2f}")
    for label, figures in measured(scenarios):
        if figures["errors"]:
            print(
                f"warning: {label}: {figures['errors']} errors (failed or timed-out sockets, "
                "or statuses other than the expected 200, or 302 for a login)"
            )


def measured(scenarios: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every summary of wrk runs in the report, with a label saying which it is."""
    for name, data in scenarios.items():
        for app, figures in data.get("apps", {}).items():
            yield f"{app} in {name}", figures
        if "logins" in data:
            yield f"logins in {name}", data["logins"]


def details(scenarios: Mapping[str, Any]) -> Iterator[str]:
    storm = scenarios.get("storm", {})
    if "logins" in storm:
        hashing, logins = storm["hashing"], storm["logins"]
        under = storm["apps"][QUARTAPP]["p99_ms"]
        yield (
            f"login storm: {logins['rps']:.1f} logins/s (p99 {logins['p99_ms']:.0f} ms) against "
            f"a limit of {hashing['login_limit_per_s']:.1f}/s = min(HASHING_CONCURRENCY "
            f"{hashing['hashing_concurrency']}, {hashing['cores']} cores) / "
            f"{hashing['hash_ms']:.0f} ms per hash; /hello p99 {under:.1f} ms under it, "
            f"{storm['idle_p99_ms']:.1f} ms idle"
        )
    storm = scenarios.get("signins", {})
    idle = storm.get("idle")
    for app, during in storm.get("apps", {}).items() if idle else ():
        yield (
            f"sign-in storm, {app}: {storm['clients']} clients, {during['logins_per_s']:.1f} "
            f"logins/s ({during['busy']} answered busy, {during['failures']} failed); /hello "
            f"p99 {during['p99_factor']:.1f}x idle ({idle['p99_ms']:.1f} ms), req/s "
            f"{during['rps_share']:.2f}x idle ({idle['rps']:.0f})"
        )
    flood = scenarios.get("flood")
    if flood:
        yield (
            f"login flood: {flood['logins']['rps']:.1f} logins/s; RSS idle "
            f"{flood['idle_rss_mib']:.0f} MiB at start ({flood['before_flood_rss_mib']:.0f} MiB "
            f"before the flood), peak {flood['peak_rss_mib']:.0f} MiB, budget "
            f"{flood['budget_mib']:.0f} MiB (idle + HASHING_CONCURRENCY x ARGON2_MEMORY_COST "
            "+ 50 MiB)"
        )
    two = scenarios.get("workers", {}).get("apps", {}).get(QUARTAPP_2W)
    if two and two.get("ratio_to_1_worker") is not None:
        yield f"2 workers: {two['ratio_to_1_worker']:.2f}x the req/s of 1 worker on /hello"
