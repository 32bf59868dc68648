"""Imported first by every benchmark, so that ``python benchmarks/NAME.py`` finds the kit:
Python puts the script's folder on ``sys.path``, not the checkout above it."""

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
