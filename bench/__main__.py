"""``python -m bench``: run the benchmark, then weigh the web line (``bench/memory.py``)."""

from __future__ import annotations

import sys

from bench import memory
from bench.run import main

raise SystemExit(main() or memory.after_bench(sys.argv[1:]))
