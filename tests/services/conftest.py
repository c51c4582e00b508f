"""Shared set-up for the services tests.

The repository root goes on `sys.path` so the tests (and the helper modules `stack` and
`recorder` next to them) import `services` even when the project is not installed in the venv.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
