"""The sign-up tests' fixtures: registration open, mail on (to files) with a fixed
BASE_URL, and no sender in the app, so the outbox rows stay as written."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import PASSWORD, csrf_token

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

BASE_URL = "http://signup.example.test"
CONFIRM_LINK = re.compile(re.escape(BASE_URL) + r"/confirm_email/([A-Za-z0-9_-]+)")
NEW_PASSWORD = "a long and uncommon passphrase for bob"


@pytest.fixture
def settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The app's settings: registration open, links from :data:`BASE_URL`."""
    settings["BASE_URL"] = BASE_URL
    settings["MAIL_SENDER_IN_WEB"] = False
    settings["REGISTRATION_OPEN"] = True
    return settings


async def register(
    client: TestClientProtocol,
    username: str = "bob",
    email: str = "bob@example.com",
    password: str = NEW_PASSWORD,
    password2: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Fill in and submit /register as a browser does, the CSRF token from the page."""
    token = await csrf_token(client, "/register")
    return await client.post(
        "/register",
        form={
            "username": username,
            "email": email,
            "password": password,
            "password2": password if password2 is None else password2,
            "csrf_token": token,
        },
        headers=headers or {},
    )


__all__ = ["BASE_URL", "CONFIRM_LINK", "NEW_PASSWORD", "PASSWORD", "register"]
