"""metrics' rows of the settings table, their check, and its typed section."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..settings import KEY_FIX, ConfigError, Part, Section, Setting, section
from ..settings.kinds import integer, text

if TYPE_CHECKING:
    from quart import Quart

# The shortest METRICS_TOKEN accepted: long enough that guessing it is hopeless.
METRICS_TOKEN_MIN = 32

ROWS: tuple[Setting, ...] = (
    # None: metrics are off and /metrics is a 404.
    Setting(
        "METRICS_TOKEN",
        text(
            min_length=METRICS_TOKEN_MIN,
            described=f"a string of at least {METRICS_TOKEN_MIN} characters",
            hint=KEY_FIX,
        ),
        None,
        "bearer token for `GET /metrics` (`python -m quartapp.keys --print` makes one);"
        " unset: no metrics, `/metrics` is a 404",
        secret=True,
    ),
    # Heroku sets DYNO (web.1, web.2...) on each dyno: the name its logs and metrics
    # dashboards use, stable across the dyno's restarts.
    Setting(
        "METRICS_INSTANCE",
        text(min_length=1, described="a non-empty string"),
        None,
        "the `instance` label on every metric; `DYNO` (Heroku's `web.1`) sets it too;"
        " unset: the address and port a scrape reached (`10.1.2.3:8000`), and for the push"
        " the host name",
        platform="DYNO",
    ),
    # None: no push; the platform's Prometheus scrapes /metrics itself.
    Setting(
        "METRICS_PUSH_URL",
        text(),
        None,
        "a Prometheus Pushgateway (`https://user:pass@push.example.com`), where one worker"
        " per instance pushes every worker's metrics, grouped by `instance`; for platforms"
        " where only a router is reachable (a password needs `https://`, but to this"
        " machine); unset: no push",
        secret=True,  # it may hold the gateway's password
    ),
    Setting(
        "METRICS_PUSH_INTERVAL",
        integer(1),
        15,
        "seconds between pushes (a Prometheus scrape interval is usually 15 s to 60 s)",
    ),
)


def check(config: Mapping[str, Any]) -> None:
    """Refuse a push URL that is not an http(s) URL with a host (ConfigError, one line)."""
    url = config["METRICS_PUSH_URL"]
    if url is None:
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (it raises ValueError for a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is not shown: it may hold a password.
        raise ConfigError(
            "METRICS_PUSH_URL must be an http:// or https:// URL of a Pushgateway,"
            " like https://push.example.com"
        )
    if parts.scheme == "http" and parts.password and not _is_loopback(parts.hostname):
        # As MAIL_URL refuses plain SMTP with a password to another machine.
        raise ConfigError(
            "METRICS_PUSH_URL holds a password but is http://, which would send it in"
            " clear to another machine; use https://"
        )


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine, where plain HTTP crosses no network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class MetricsSettings(Section):
    """metrics' settings, typed."""

    metrics_token: str | None  # None: /metrics is a 404
    metrics_instance: str | None  # None: the address a scrape reached, or the host name
    metrics_push_url: str | None  # None: no push
    metrics_push_interval: int

    @property
    def enabled(self) -> bool:
        """Whether metrics are collected: served at ``/metrics``, pushed, or both."""
        return bool(self.metrics_token or self.metrics_push_url)


PART = Part("Metrics", ROWS, MetricsSettings, check=check)


def of(app: Quart) -> MetricsSettings:
    """``app``'s metrics settings, outside a request."""
    return section(app, MetricsSettings)


def current() -> MetricsSettings:
    """The serving app's metrics settings."""
    from quart import current_app

    return section(current_app, MetricsSettings)
