"""``meshplay proxy-status``: every running Envoy of the local mesh and its xDS sync state.

Like ``istioctl proxy-status``: one row per proxy with, per xDS type, ``SYNCED`` when Envoy
accepted every update, ``REJECTED(n)`` when it NACKed one (it keeps serving the previous config),
read live from each Envoy's admin endpoint.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``proxy-status`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-status", help="sync state of the running local Envoys", description=__doc__
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from cluster.local.state import MeshStateFile, proxy_status, state_dir

    record = MeshStateFile.read(state_dir() / "local.json")
    if record is None:
        print("no local mesh is up: start one with meshplay up", file=sys.stderr)
        return 2
    rows = [proxy_status(p) for p in record.pods if p.proxy != "none"]
    print(f"{'NAME':<34} {'LDS':<12} {'CDS':<12} {'RDS':<12} {'SDS':<12} {'STATE':<6} "
          f"{'VERSION':<8} ADMIN")  # fmt: skip
    for r in rows:
        print(f"{r.name + '.' + r.namespace:<34} {r.lds:<12} {r.cds:<12} {r.rds:<12} "
              f"{r.sds:<12} {r.state:<6} {r.version:<8} {r.admin_url}")  # fmt: skip
    return 0 if all(r.state == "LIVE" for r in rows) else 1
