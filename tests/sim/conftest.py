"""The repository root goes on ``sys.path`` so the tests can import ``tests.sim.harness``."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
