"""``meshplay proxy-status``: every running Envoy of the local mesh and its xDS sync state.

Like ``istioctl proxy-status``: one row per proxy with, per xDS type, ``SYNCED`` when Envoy
accepted every update, ``REJECTED(n)`` when it NACKed one (it keeps serving the previous config),
read live from each Envoy's admin endpoint. ``--kube``: a cluster's proxies, as istiod's
``/debug/syncz`` reports them (SYNCED, or STALE for a push not acknowledged).
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
    p.add_argument("--kube", action="store_true",
                   help="the proxies of a cluster, as istiod reports them (kubectl exec into istiod)")  # fmt: skip
    p.add_argument("--context", default="", help="kubeconfig context for --kube")
    p.add_argument("--namespace", default="", help="only the proxies of this namespace (--kube)")
    p.set_defaults(handler=_run)


def _kube(args: argparse.Namespace) -> int:
    from cluster.kube.api import KubeApi, KubeError
    from cluster.kube.inspect import proxy_status

    try:
        api = KubeApi.connect(args.context)
        try:
            rows = proxy_status(api, args.namespace)
        finally:
            api.close()
    except KubeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'NAME':<50} {'CDS':<9} {'LDS':<9} {'EDS':<9} {'RDS':<9}")
    for r in rows:
        s = r.states
        print(f"{r.proxy:<50} {s['CDS']:<9} {s['LDS']:<9} {s['EDS']:<9} {s['RDS']:<9}")
    return 0 if all(r.synced for r in rows) else 1


def _run(args: argparse.Namespace) -> int:
    if args.kube:
        return _kube(args)
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
