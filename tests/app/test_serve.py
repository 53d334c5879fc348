"""``python -m quartapp.serve``: the settings are checked before hypercorn starts.

The Procfile's web line runs it; ``tests/app/test_server.py`` runs that line for real, and
``tests/app/test_server_metrics.py`` uses the metrics folder it makes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quartapp import load_config, serve
from quartapp.metrics.settings import MetricsSettings


def test_bad_settings_end_it_with_one_line_before_hypercorn_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUARTAPP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "too-short")

    status = serve.main(["--config", "hypercorn.toml", "quartapp:app"])

    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err.startswith("quartapp: refusing to start: SECRET_KEY is shorter than 32 bytes")
    assert err.count("\n") == 1
    assert "too-short" not in err


def test_an_instance_folder_it_cannot_create_ends_it_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("QUARTAPP_INSTANCE_PATH", str(blocker / "instance"))
    monkeypatch.setenv("SECRET_KEY", "k" * 43)

    status = serve.main(["quartapp:app"])

    _, err = capsys.readouterr()
    assert status == 1
    assert err.startswith("quartapp: refusing to start: ")
    assert err.count("\n") == 1


def test_metrics_folder_is_made_per_run_named_for_the_workers_and_removed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SECRET_KEY", "k" * 43)
    monkeypatch.setenv("QUARTAPP_METRICS_TOKEN", "t" * 40)
    monkeypatch.setenv(serve.MULTIPROCESS_DIR, str(tmp_path))
    (tmp_path / "counter_1.db").write_bytes(b"left by an earlier run")

    with serve.metrics_folder(MetricsSettings.from_config(load_config()).enabled) as folder:
        assert folder is not None
        assert os.environ[serve.MULTIPROCESS_DIR] == folder
        assert Path(folder).parent == tmp_path
        assert list(Path(folder).iterdir()) == []  # nothing of the earlier run

    assert not Path(folder).exists()
    assert (tmp_path / "counter_1.db").exists()


def test_no_metrics_folder_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serve.MULTIPROCESS_DIR, raising=False)

    with serve.metrics_folder(MetricsSettings.from_config(load_config()).enabled) as folder:
        assert folder is None
        assert serve.MULTIPROCESS_DIR not in os.environ
