"""How pages show a login or an event: its browser in words, its times to the minute."""

from __future__ import annotations

from datetime import UTC, datetime

# (token in the User-Agent, name), first match wins: Edge and Opera also say "Chrome",
# and Chrome also says "Safari", so the more specific tokens come first.
BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def browser_summary(user_agent: str | None) -> str:
    """A short, human name for a User-Agent, such as "Firefox on Windows".

    Only a few well-known tokens are looked for; it names what a person recognises,
    and says "Unknown browser" rather than guess.
    """
    text = user_agent or ""
    browser = next((name for token, name in BROWSERS if token in text), None)
    system = next((name for token, name in SYSTEMS if token in text), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return f"{browser or 'Unknown browser'}{f' on {system}' if system else ''}"
    return "Unknown browser"


def utc_minute(moment: datetime | float) -> datetime:
    """A time from the logins table (a datetime or Unix seconds), in UTC, to the minute."""
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    else:
        aware = datetime.fromtimestamp(moment, UTC)
    return aware.astimezone(UTC).replace(second=0, microsecond=0)


def iso_utc(moment: datetime | float | None) -> str | None:
    """A stored time (a datetime or Unix seconds) as ISO 8601 in UTC, for a data export."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    return datetime.fromtimestamp(moment, UTC).isoformat()
