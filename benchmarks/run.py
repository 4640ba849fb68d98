"""Run benchmarks by name: ``.venv/bin/python benchmarks/run.py [NAME...]`` (none: all).

Each benchmark is ``benchmarks/NAME.py`` with a ``main()``; results go to ``RESULTS.md``.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("units", "t2u", "trainer", "vocoders", "scale")

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHMARKS)
    if unknown := [n for n in names if n not in BENCHMARKS]:
        sys.exit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    for name in names:
        importlib.import_module(name).main()  # this script's folder is first on sys.path
