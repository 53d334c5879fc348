"""metrics' row of the settings table, and its typed section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..settings import KEY_FIX, Part, Section, Setting, section
from ..settings.kinds import text

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
)


@dataclass(frozen=True, slots=True)
class MetricsSettings(Section):
    """metrics' settings, typed."""

    metrics_token: str | None  # None: metrics are off

    @property
    def enabled(self) -> bool:
        """Whether metrics are collected and ``/metrics`` is served."""
        return bool(self.metrics_token)


PART = Part("Metrics", ROWS, MetricsSettings)


def of(app: Quart) -> MetricsSettings:
    """``app``'s metrics settings, outside a request."""
    return section(app, MetricsSettings)


def current() -> MetricsSettings:
    """The serving app's metrics settings."""
    from quart import current_app

    return section(current_app, MetricsSettings)
