"""``/metrics``: off by default, behind a bearer token, and counting what happened.

The metrics live in the test process's one registry, so each test compares the values
before and after what it does. The real-server test with two workers is in
``tests/app/test_server_metrics.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from quart import Quart

from quartapp import create_app
from tests.conftest import (
    BOTH_DATABASES,
    PASSWORD,
    AuthActions,
    add_user,
    csrf_token,
    make_settings,
    settings_at_head,
)

if TYPE_CHECKING:
    # Only for annotations: a Test* class at module level would be collected by pytest.
    from quart.typing import TestClientProtocol

TOKEN = "metrics-token-0123456789abcdefghijklmnopqrstuvwxyz"
WRONG = "wrong password, quite long"
NEW_PASSWORD = "a brand new password, long enough"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by name and labels, but ``instance``, which each must have."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("instance"), f"{sample.name} has no instance label"
            samples[(sample.name, tuple(sorted(labels.items())))] = sample.value
    return samples


def instances(text: str) -> set[str]:
    """The ``instance`` labels in a scrape."""
    return {
        sample.labels["instance"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: TestClientProtocol) -> Samples:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    return parse(await response.get_data(as_text=True))


def logins(samples: Samples, result: str) -> float:
    return samples[("quartapp_logins_total", (("result", result),))]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(tmp_path: Path, database: str) -> dict[str, Any]:
    return settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN)


async def test_metrics_are_a_404_when_off(tmp_path: Path, database: str) -> None:
    app = create_app(settings_at_head(tmp_path, database))
    async with app.test_app():
        client = app.test_client()
        plain = await client.get("/metrics")
        with_a_token = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert plain.status_code == 404
    assert with_a_token.status_code == 404
    assert "quartapp_" not in await with_a_token.get_data(as_text=True)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer é"],
    ids=["none", "empty", "no-token", "basic", "longer", "shorter", "non-ascii"],
)
async def test_metrics_without_the_right_token_are_a_404(
    client: TestClientProtocol, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await client.get("/metrics", headers=headers)

    assert response.status_code == 404
    assert "quartapp_" not in await response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["", "short", "x" * 31])
def test_a_short_metrics_token_is_refused_without_showing_it(tmp_path: Path, name: str) -> None:
    from quartapp.settings import ConfigError

    with pytest.raises(ConfigError) as caught:
        create_app(make_settings(tmp_path, METRICS_TOKEN=name or 12345))

    assert "METRICS_TOKEN must be a string of at least 32 characters" in caught.value.message
    assert not name or name not in caught.value.message


@BOTH_DATABASES
async def test_logins_logouts_and_account_events_are_counted(
    app: Quart, auth: AuthActions
) -> None:
    other = AuthActions(app.test_client())
    await other.login()
    before = await scrape(auth.client)

    await auth.login("alice", WRONG)
    await auth.login()
    await auth.client.post(
        "/account/sessions/end-others",
        form={"csrf_token": await csrf_token(auth.client, "/account/sessions")},
    )
    await auth.client.post(
        "/account/password",
        form={
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": await csrf_token(auth.client, "/account/password"),
        },
    )
    await auth.logout()
    after = await scrape(auth.client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("quartapp_logins_total", result="failure") == 1
    assert grew("quartapp_logins_total", result="success") == 1
    assert grew("quartapp_logouts_total") == 1
    assert grew("quartapp_sessions_ended_total") == 1  # `other`, from the sessions page
    assert grew("quartapp_password_changes_total") == 1
    # By route template and status class, never by raw path.
    # Each login GETs the form, then POSTs it: the wrong one gets the form again.
    assert grew("quartapp_request_duration_seconds_count", route="/login", status="2xx") == 3
    assert grew("quartapp_request_duration_seconds_count", route="/login", status="3xx") == 1
    assert grew("quartapp_request_duration_seconds_count", route="/logout", status="3xx") == 1
    assert value(after, "quartapp_hashing_queue_depth") == 0


@BOTH_DATABASES
async def test_a_throttled_login_is_counted_as_throttled(auth: AuthActions) -> None:
    before = await scrape(auth.client)

    for _ in range(6):
        await auth.login("alice", WRONG)
    after = await scrape(auth.client)

    assert logins(after, "failure") - logins(before, "failure") == 5
    assert logins(after, "throttled") - logins(before, "throttled") == 1


async def test_unmatched_paths_share_one_label(client: TestClientProtocol) -> None:
    for path in ("/no-such-page", "/another/missing/page", "/wp-login.php"):
        assert (await client.get(path)).status_code == 404

    samples = await scrape(client)

    routes = {dict(labels).get("route") for (name, labels) in samples if "duration" in name}
    assert "<unmatched>" in routes
    assert not routes & {"/no-such-page", "/another/missing/page", "/wp-login.php"}


async def test_a_full_hashing_queue_is_counted_as_queue_full(
    tmp_path: Path, database: str
) -> None:
    app = create_app(
        settings_at_head(
            tmp_path, database, METRICS_TOKEN=TOKEN, HASHING_CONCURRENCY=1, HASHING_QUEUE=1
        )
    )
    async with app.test_app():
        await add_user(app)
        client = app.test_client()
        before = await scrape(client)
        browsers = [AuthActions(app.test_client()) for _ in range(8)]
        tokens = [await csrf_token(browser.client) for browser in browsers]
        responses = await asyncio.gather(
            *(
                browser.client.post(
                    "/login",
                    form={"username": "alice", "password": WRONG, "csrf_token": token},
                )
                for browser, token in zip(browsers, tokens, strict=True)
            )
        )
        after = await scrape(client)

    turned_away = sum(response.status_code == 503 for response in responses)
    assert turned_away > 0
    assert logins(after, "queue_full") - logins(before, "queue_full") == turned_away
    assert logins(after, "failure") - logins(before, "failure") == len(responses) - turned_away


async def test_a_database_failure_is_counted(tmp_path: Path) -> None:
    # A database file whose folder does not exist: every query fails, as in an outage.
    app = create_app(
        make_settings(
            tmp_path,
            METRICS_TOKEN=TOKEN,
            DATABASE_URL=f"sqlite:///{tmp_path}/missing/folder/x.db",
            DATABASE_AUTO_UPGRADE=False,
        )
    )
    async with app.test_app():
        client = app.test_client()
        before = await scrape(client)
        token = await csrf_token(client)
        response = await client.post(
            "/login", form={"username": "alice", "password": WRONG, "csrf_token": token}
        )
        after = await scrape(client)

    assert response.status_code == 503
    assert (
        value(after, "quartapp_db_errors_total") - value(before, "quartapp_db_errors_total") == 1
    )
    assert (
        value(after, "quartapp_request_duration_seconds_count", route="/login", status="5xx") >= 1
    )
