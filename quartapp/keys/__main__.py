"""``python -m quartapp.keys``: runs :func:`quartapp.keys.command.main`.

Keeping the entry point separate lets ``quartapp.settings`` import the key functions
without Python warning that the module it is about to run was imported already.
"""

from .command import main

raise SystemExit(main())
