"""The benchmark's smoke test: ``python -m bench --quick`` runs and measures something.

No timing is asserted: the bench reports figures, it does not judge them here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH_PACKAGES = ("flask_login", "flask_sqlalchemy", "flask_wtf", "gunicorn")


@pytest.mark.server
def test_quick_bench_measures_quartapp_and_the_flask_tutorial(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed: apt-get install wrk")
    missing = [name for name in BENCH_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the bench group is not installed ({', '.join(missing)}): make install-bench")
    output = tmp_path / "latest.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    apps = json.loads(output.read_text())["scenarios"]["hello"]["apps"]
    for app in ("quartapp", "flask-tutorial"):
        assert apps[app]["rps"] > 0, (app, apps[app])
        assert apps[app]["errors"] == 0, (app, apps[app])
    assert "authenticated /hello" in result.stdout
