"""``python -m quartapp.reference > docs/configuration.md``: write the configuration page.

Above the features, so that the page has every feature's settings while the settings
package, which renders it, names none (:func:`quartapp.settings.reference.render`).
"""

from __future__ import annotations

import sys

from . import setting_parts
from .settings import reference


def page() -> str:
    """The configuration page: the base's settings and every feature's."""
    return reference.render(setting_parts())


if __name__ == "__main__":
    sys.stdout.write(page())
