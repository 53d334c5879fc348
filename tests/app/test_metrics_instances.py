"""Metrics for several instances: the ``instance`` label, and the new counters.

Every series names its instance (``METRICS_INSTANCE``, which Heroku's ``DYNO`` sets,
else the address the scrape reached), second-factor codes and passkey ceremonies are
counted by outcome, and each worker's process figures are shown. The real-server
tests (the label from host and port, two workers, the push to a real Pushgateway read
by a real Prometheus) are in ``tests/app/test_server_metrics_push.py``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quartapp import create_app
from quartapp.metrics import instance
from quartapp.settings import ConfigError, load_config
from tests.app.test_metrics import TOKEN, Samples, instances, scrape, value
from tests.conftest import (
    PASSWORD,
    AuthActions,
    aquery,
    csrf_token,
    settings_at_head,
)
from tests.passkeys.test_passkeys import (
    CONFIRM,
    CONFIRM_OPTIONS,
    post_json,
    register,
)
from tests.passkeys.test_passkeys import (
    sign_in as passkey_sign_in,
)
from tests.support.passkey_authenticator import SoftAuthenticator
from tests.support.twofactor import enrolled, post_form, second_step, sign_in

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

WRONG_RECOVERY = "AAAAA-AAAAA"


@pytest.fixture
def settings(tmp_path: Path, database: str) -> dict[str, Any]:
    return settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN)


async def raw_scrape(client: TestClientProtocol) -> str:
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return await response.get_data(as_text=True)


def second_factor(samples: Samples, method: str, result: str) -> float:
    return value(samples, "quartapp_second_factor_total", method=method, result=result)


def passkey(samples: Samples, ceremony: str, result: str) -> float:
    return value(samples, "quartapp_passkey_total", ceremony=ceremony, result=result)


# The instance label


async def test_every_series_is_labelled_with_dyno(
    tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNO", "web.2")
    app = create_app(settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN))
    async with app.test_app():
        text = await raw_scrape(app.test_client())

    # parse() (through scrape) checks each sample has one; here, that it is DYNO's.
    assert instances(text) == {"web.2"}
    assert "quartapp_logins_total" in text


async def test_without_dyno_a_scrape_with_no_address_names_the_host(
    tmp_path: Path, database: str
) -> None:
    assert "DYNO" not in os.environ
    app = create_app(settings_at_head(tmp_path, database, METRICS_TOKEN=TOKEN))
    async with app.test_app():
        # The test client's requests come over no socket: the host name stands in.
        text = await raw_scrape(app.test_client())

    assert instances(text) == {socket.gethostname()}


def test_an_address_is_host_and_port() -> None:
    assert instance.address(("10.1.2.3", 8000)) == "10.1.2.3:8000"
    assert instance.address(("::1", 8000)) == "[::1]:8000"
    assert instance.address(None) == socket.gethostname()
    assert instance.of("web.1", ("10.1.2.3", 8000)) == "web.1"


def test_dyno_and_a_different_metrics_instance_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNO", "web.1")
    monkeypatch.setenv("QUARTAPP_METRICS_INSTANCE", "web.1")
    config = load_config({"INSTANCE_PATH": str(tmp_path)}, parts=_parts())
    assert config["METRICS_INSTANCE"] == "web.1"

    monkeypatch.setenv("QUARTAPP_METRICS_INSTANCE", "other")
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_PATH": str(tmp_path)}, parts=_parts())
    assert refused.value.message == (
        "DYNO and QUARTAPP_METRICS_INSTANCE are both set and differ; unset one of them"
    )


@pytest.mark.parametrize(
    "url",
    ["push.example.com", "ftp://user:s3cret@push.example.com", "https://", "http://host:port"],
)
def test_a_push_url_that_is_not_http_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({"INSTANCE_PATH": str(tmp_path), "METRICS_PUSH_URL": url}, parts=_parts())
    assert refused.value.message.startswith("METRICS_PUSH_URL must be an http:// or https://")
    # The value is never shown: it may hold the gateway's password.
    assert "s3cret" not in refused.value.message


def test_a_push_password_over_plain_http_to_another_machine_is_refused(tmp_path: Path) -> None:
    def load(url: str) -> dict[str, Any]:
        return load_config(
            {"INSTANCE_PATH": str(tmp_path), "METRICS_PUSH_URL": url}, parts=_parts()
        )

    with pytest.raises(ConfigError) as refused:
        load("http://user:s3cret@push.example.com")
    assert "use https://" in refused.value.message
    assert "s3cret" not in refused.value.message
    # Over TLS, or to this machine, or without a password, it is accepted.
    assert load("https://user:s3cret@push.example.com")["METRICS_PUSH_URL"]
    assert load("http://user:s3cret@127.0.0.1:9091")["METRICS_PUSH_URL"]
    assert load("http://push.internal:9091")["METRICS_PUSH_URL"]


def _parts() -> Any:
    from quartapp import setting_parts

    return setting_parts()


# Process figures


async def test_process_figures_are_shown_for_this_worker(
    app: Any, client: TestClientProtocol
) -> None:
    text = await raw_scrape(client)
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("process_")
    }

    # Linux has /proc: real figures of this process, not zeros.
    assert samples["process_resident_memory_bytes"] > 10_000_000
    assert samples["process_open_fds"] > 0
    assert samples["process_max_fds"] >= samples["process_open_fds"]
    assert abs(samples["process_start_time_seconds"] - time.time()) < 24 * 3600
    assert samples["process_cpu_seconds_total"] > 0


# Second factors


async def test_second_factor_codes_are_counted_by_method_and_result(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    phone = await enrolled(auth)
    before = await scrape(client)

    # At the login's code step: a wrong TOTP code, then a right one.
    assert (await sign_in(auth, "000000")).status_code == 400
    assert (await second_step(client, phone.code())).status_code == 302
    await auth.logout()
    # A wrong recovery code, then a right one.
    assert (await sign_in(auth, WRONG_RECOVERY)).status_code == 400
    assert (await second_step(client, phone.recovery_codes[0])).status_code == 302
    # Confirming the login (re-auth): a wrong recovery code, then a right TOTP code.
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    confirm = "/login/confirm?next=/hello"
    wrong = await post_form(client, confirm, password=PASSWORD, code=WRONG_RECOVERY)
    assert wrong.status_code == 400
    right = await post_form(client, confirm, password=PASSWORD, code=phone.code(1))
    assert right.headers["Location"] == "/hello"
    after = await scrape(client)

    def counted(method: str, result: str) -> float:
        return second_factor(after, method, result) - second_factor(before, method, result)

    assert counted("totp", "failed") == 1
    assert counted("totp", "ok") == 2
    assert counted("recovery-code", "failed") == 2
    assert counted("recovery-code", "ok") == 1


# Passkeys


async def test_passkey_ceremonies_are_counted_by_result(
    auth: AuthActions, client: TestClientProtocol, settings: dict[str, Any]
) -> None:
    before = await scrape(client)
    key = SoftAuthenticator()
    await auth.login()
    assert (await register(client, SoftAuthenticator(), origin="http://evil.example"))[0] == 400
    assert (await register(client, key, "Laptop"))[0] == 200
    # Confirming this login with the passkey is an authentication too.
    await aquery(settings, f"UPDATE logins SET verified_at = {time.time() - 3600}")
    token = await csrf_token(client, "/login/confirm")
    status, options = await post_json(client, CONFIRM_OPTIONS, {}, token)
    assert status == 200, options
    credential = key.get(options["publicKey"])
    assert (await post_json(client, CONFIRM, {"credential": credential}, token))[0] == 200
    await auth.logout()
    assert (await passkey_sign_in(client, key, bad_signature=True))[0] == 400
    assert (await passkey_sign_in(client, key))[0] == 200
    after = await scrape(client)

    def counted(ceremony: str, result: str) -> float:
        return passkey(after, ceremony, result) - passkey(before, ceremony, result)

    assert counted("registration", "failed") == 1
    assert counted("registration", "ok") == 1
    assert counted("authentication", "failed") == 1
    assert counted("authentication", "ok") == 2


async def test_every_outcome_shows_from_the_first_scrape(client: TestClientProtocol) -> None:
    samples = await scrape(client)

    for method in ("totp", "recovery-code"):
        for result in ("ok", "failed"):
            key = ("quartapp_second_factor_total", (("method", method), ("result", result)))
            assert key in samples
    for ceremony in ("registration", "authentication"):
        for result in ("ok", "failed"):
            key = ("quartapp_passkey_total", (("ceremony", ceremony), ("result", result)))
            assert key in samples
