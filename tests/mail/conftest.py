"""The mail tests' fixtures: an app with mail on (to files, as in development) and a
fixed BASE_URL, so links in messages can be checked for what they must be."""

from __future__ import annotations

from typing import Any

import pytest

BASE_URL = "http://mail.example.test"


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The app's settings, with links built from :data:`BASE_URL`."""
    settings["BASE_URL"] = BASE_URL
    return settings
