"""``python -m quartapp.keys``: the command lives here, the API in the package.

Keeping the entry point separate lets ``quartapp.settings`` import the key functions
without Python warning that the module it is about to run was imported already.
"""

from . import main

raise SystemExit(main())
