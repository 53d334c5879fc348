"""The documentation: a short README, a generated configuration page, no history in docs.

The site itself is built by ``make docs`` (``mkdocs build --strict``) in CI, which
fails on a page missing from the nav, a broken link or a bad anchor.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from quartapp import reference

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
README_MAX_LINES = 250
# History belongs in CHANGELOG.md: "issue 13", "issues 7, 8", a load average, a date.
HISTORY = re.compile(r"\bissues? \d+|load average|\b20\d\d-\d\d-\d\d\b(?!T)", re.IGNORECASE)


def pages() -> list[Path]:
    """The README and every page of the site."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_the_configuration_page_is_the_generators_output() -> None:
    page = (DOCS / "configuration.md").read_text()

    assert page == reference.page(), (
        "docs/configuration.md is out of date: run "
        "`.venv/bin/python -m quartapp.reference > docs/configuration.md`"
    )


def test_the_generator_runs_as_a_module_and_prints_the_page() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "quartapp.reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout == (DOCS / "configuration.md").read_text()


def test_the_configuration_page_gives_each_settings_variable_and_default() -> None:
    page = reference.page()

    assert "| `SECRET_KEY` (secret) | `QUARTAPP_SECRET_KEY`, `SECRET_KEY` |" in page
    assert "| `QUARTAPP_PASSWORD_MIN_LENGTH` | a positive integer | `15` |" in page
    assert "| `TRUSTED_HOSTS` | `QUARTAPP_TRUSTED_HOSTS` |" in page
    assert "| `QUARTAPP_INSTANCE_PATH` |" in page


def test_the_readme_is_short_and_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()

    assert len(readme.splitlines()) <= README_MAX_LINES
    assert "make run " in readme
    assert "make test " in readme


def test_the_readme_links_every_page_of_the_site() -> None:
    readme = (ROOT / "README.md").read_text()

    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"the README does not link docs/{page.name}"


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_the_docs_describe_the_present(page: Path) -> None:
    found = HISTORY.findall(page.read_text())

    assert not found, f"{page.name} names history ({found}); it belongs in CHANGELOG.md"


def test_the_security_table_covers_every_threat_it_always_has() -> None:
    page = (DOCS / "security.md").read_text()
    table = page.split("\n## Security model\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]

    # The header, and a row per threat; a row taken out must be taken out on purpose.
    assert rows[0] == "| what | how | limits |"
    assert len(rows) - 1 >= 44
