"""``meshplay down``: stop the local mesh ``meshplay up`` left running, by the recorded PIDs.

A PID is only signalled while it still names the process recorded at ``up`` (same start time),
so a reused PID is never hit. SIGTERM first, SIGKILL after a grace period.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``down`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "down", help="stop the local mesh started by meshplay up", description=__doc__
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cluster.local.state import MeshStateFile, state_dir, stop_recorded

    path = state_dir() / "local.json"
    record = MeshStateFile.read(path)
    if record is None:
        print(f"nothing is up (no {path})", file=sys.stderr)
        return 0
    alive = len(record.alive())
    _stopped, stuck = stop_recorded(record)
    if stuck:
        print(f"could not stop: {', '.join(stuck)}", file=sys.stderr)
        return 1
    path.unlink(missing_ok=True)
    (state_dir() / "monitoring.json").unlink(missing_ok=True)
    print(f"stopped {record.app}: {alive} processes")
    return 0
