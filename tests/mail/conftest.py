"""The mail tests' fixtures: an app with mail on (to files, as in development) and a
fixed BASE_URL, so links in messages can be checked for what they must be.

The app sends nothing itself (``MAIL_SENDER_IN_WEB=false``): the tests of what pages
write read the outbox rows as written, which a sender would deliver and erase under
them. The sender's own tests (``test_sender.py``, ``test_worker.py``) run one."""

from __future__ import annotations

from typing import Any

import pytest

BASE_URL = "http://mail.example.test"


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The app's settings, with links built from :data:`BASE_URL`."""
    settings["BASE_URL"] = BASE_URL
    settings["MAIL_SENDER_IN_WEB"] = False
    return settings
