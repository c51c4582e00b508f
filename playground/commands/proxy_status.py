"""``meshplay proxy-status``: every Envoy of the running local mesh and whether it runs the
configuration meshplay last sent it.

The columns are ``istioctl proxy-status``'s: NAME, CLUSTER, then per xDS type (CDS, LDS, EDS,
RDS, ECDS) the sync state, then ISTIOD (the control plane) and VERSION. The states mean what
istiod's mean:

- ``SYNCED``: the proxy acknowledged the last configuration of that type it was sent (istiod:
  the nonce it sent was ACKed). Here: the version Envoy accepted (its ``version_text``) is the
  version of the xDS file meshplay last wrote for it.
- ``NOT_SENT``: nothing of that type was ever sent to the proxy. The local mesh sends endpoints
  inside the clusters (no EDS), routes inside the listeners (no RDS) and no extension configs
  (no ECDS), so those columns say ``NOT_SENT``, as they would on istiod for a proxy that never
  asked for them.
- ``STALE``: a configuration was sent and not (yet) acknowledged: Envoy has not read the new file
  yet, or rejected it (a NACK; the rejections are listed under the table). Envoy keeps serving
  the configuration it had.

``--kube`` reads a cluster's proxies as istiod's ``/debug/syncz`` reports them instead.

CLUSTER is ``local`` (istiod's cluster ID; a single-cluster Istio says ``Kubernetes``), ISTIOD is
meshplay's file-based xDS of the ``meshplay up`` process, VERSION the proxy's Envoy version.
Exit code: 0 when every proxy answered and is LIVE, 1 when one is not, 2 when no mesh is up.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playground.commands.proxy_tables import format_table

if TYPE_CHECKING:
    from cluster.local.state import MeshStateFile, PodEntry

__all__ = ["SyncRow", "register", "sync_row", "sync_state"]

COLUMNS = ("CDS", "LDS", "EDS", "RDS", "ECDS")
"""istioctl's xDS columns, in its order."""

_SUBSCRIPTIONS = {"CDS": "cds", "LDS": "lds", "EDS": "eds", "RDS": "rds"}
"""Column -> the local mesh's xDS file folder (``cluster.local.xds``); ECDS has none."""


def register(sub: Any) -> None:
    """Add the ``proxy-status`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-status",
        aliases=["ps"],
        help="whether each running local Envoy runs its latest config (like istioctl)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--kube", action="store_true",
                   help="the proxies of a cluster, as istiod reports them (kubectl exec into istiod)")  # fmt: skip
    p.add_argument("--context", default="", help="kubeconfig context for --kube")
    p.add_argument("--namespace", default="", help="only the proxies of this namespace (--kube)")
    p.set_defaults(handler=_run)


@dataclass(frozen=True, slots=True)
class SyncRow:
    """One line of the table (``states`` per column of :data:`COLUMNS`), and what went wrong."""

    name: str
    cluster: str
    states: tuple[str, ...]
    istiod: str
    version: str
    problems: tuple[str, ...] = ()
    live: bool = True
    """The proxy answered and is serving (Envoy's server state LIVE)."""


def sync_state(sent: list[str], accepted: list[str | None]) -> str:
    """istiod's state of one xDS type from the versions written (one per file of that type) and
    the versions the proxy accepted for the same files (None: no acknowledgement known)."""
    if not sent:
        return "NOT_SENT"
    if all(a is not None and a == s for s, a in zip(sent, accepted, strict=True)):
        return "SYNCED"
    return "STALE"


def _text_stats(body: str) -> dict[str, str]:
    """``name: value`` lines of Envoy's ``/stats`` (text readouts keep their quotes off)."""
    out: dict[str, str] = {}
    for line in body.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            out[name.strip()] = value.strip().strip('"')
    return out


def _file_version(path: Path) -> str:
    try:
        return str(json.loads(path.read_text(encoding="utf-8")).get("version_info", ""))
    except (OSError, ValueError):
        return ""


def _accepted(kind: str, file: Path, stats: dict[str, str]) -> str | None:
    """The version the proxy accepted for one xDS file (Envoy's ``version_text`` readout)."""
    if kind in ("lds", "cds"):
        prefix = "listener_manager" if kind == "lds" else "cluster_manager"
        return stats.get(f"{prefix}.{kind}.version_text")
    stem = file.stem  # an RDS/EDS file is named after its resource
    suffix = f".{kind}.{stem}.version_text"
    return next((v for k, v in stats.items() if k.endswith(suffix)), None)


def _why_stale(kind: str, stats: dict[str, str]) -> str:
    """What Envoy's counters say about a type it has not acknowledged."""
    counts = {"update_rejected": 0, "update_failure": 0}
    for key, value in stats.items():
        for counter in counts:
            if f".{kind}." in key and key.endswith(counter) and value.isdigit():
                counts[counter] += int(value)
    if counts["update_rejected"] or counts["update_failure"]:
        return (
            f"not acknowledged: Envoy refused updates (rejected {counts['update_rejected']}, "
            f"could not read {counts['update_failure']}) and serves the previous config"
        )
    return "not acknowledged yet: Envoy has not read the newest file"


def sync_row(pod: PodEntry, workdir: Path, owner_pid: int) -> SyncRow:
    """Read one proxy: its files (what was sent) and its admin endpoint (what it accepted)."""
    from cluster.local.admin import AdminClient, AdminError

    name = f"{pod.name}.{pod.namespace}"
    istiod = f"meshplay-{owner_pid}" if owner_pid else "meshplay"
    admin = AdminClient(pod.admin_port, timeout_s=1.0)
    try:
        status, body = admin.request("/stats?filter=version_text|update_rejected|update_failure")
        info = admin.server_info()
    except AdminError as exc:
        return SyncRow(name, "local", ("-",) * len(COLUMNS), istiod, "-", (str(exc),), False)
    if status != 200:
        down = (f"admin /stats: HTTP {status}",)
        return SyncRow(name, "local", ("-",) * len(COLUMNS), istiod, "-", down, False)
    stats = _text_stats(body)
    # the local runner's layout: <workdir>/envoy/<pod>/xds/<kind>/*.json (cluster.local.mesh)
    xds = workdir / "envoy" / pod.name / "xds"
    states = []
    problems = []
    for column in COLUMNS:
        kind = _SUBSCRIPTIONS.get(column)
        files = sorted((xds / kind).glob("*.json")) if kind else []
        sent = [_file_version(f) for f in files]
        accepted = [_accepted(kind or "", f, stats) for f in files]
        states.append(sync_state(sent, accepted))
        if states[-1] == "STALE":
            problems.append(f"{column}: {_why_stale(kind or '', stats)}")
    state = str(info.get("state", "?"))
    if state != "LIVE":
        problems.append(f"server state {state}")
    version = str(info.get("version", "")).split("/")
    return SyncRow(
        name,
        "local",
        tuple(states),
        istiod,
        version[1] if len(version) > 1 else "?",
        tuple(problems),
        state == "LIVE",
    )


def format_rows(rows: list[SyncRow]) -> str:
    """The table, in istioctl's column order, sorted by name, then any problems."""
    headers = ["NAME", "CLUSTER", *COLUMNS, "ISTIOD", "VERSION"]
    cells = [[r.name, r.cluster, *r.states, r.istiod, r.version] for r in rows]
    lines = [format_table(headers, cells)]
    for r in rows:
        lines += [f"{r.name}: {p}" for p in r.problems]
    return "\n".join(lines)


def _status(record: MeshStateFile) -> list[SyncRow]:
    workdir = Path(record.workdir)
    pods = [p for p in record.pods if p.proxy != "none" and p.admin_port]
    return sorted((sync_row(p, workdir, record.owner_pid) for p in pods), key=lambda row: row.name)


def _kube(args: argparse.Namespace) -> int:
    """``--kube``: a cluster's proxies, as istiod's ``/debug/syncz`` reports them."""
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
    from cluster.local.state import MeshStateFile, state_dir

    record = MeshStateFile.read(state_dir() / "local.json")
    if record is None:
        print("no local mesh is up: start one with meshplay up", file=sys.stderr)
        return 2
    rows = _status(record)
    print(format_rows(rows))
    return 0 if all(r.live for r in rows) else 1
