"""``meshplay logs``: the local mesh's Envoy access logs and app logs as one timeline.

Every proxy's access-log lines (one per request per hop: reporter, caller -> service, method,
path, status, response flags, duration, upstream cluster, request id and trace id) and every
app's own log lines, merged by time. ``--request-id ID`` or ``--trace ID`` keeps one request's
lines at every hop, with what the apps it crossed logged while handling it; ``--proxy P`` keeps
the pods whose name starts with P; ``-f`` keeps printing new lines until Ctrl-C.

Reads the mesh ``meshplay up`` left running (or a local run's folder, ``--workdir``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``logs`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "logs",
        help="merge the local mesh's access logs and app logs, by request or trace id",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--request-id", default="", metavar="ID", help="one request (x-request-id)")
    which.add_argument("--trace", default="", metavar="ID", help="one trace (trace id)")
    p.add_argument("--proxy", default="", metavar="POD", help="pods whose name starts with POD")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--tail", type=int, default=0, metavar="N", help="only the last N lines")
    p.add_argument("--workdir", type=Path, help="a local mesh's folder (default: meshplay up's)")
    p.set_defaults(handler=_run)


def _pods(workdir: Path) -> list[str]:
    names = {p.stem for p in (workdir / "access").glob("*.log")}
    names |= {p.stem.removeprefix("app-") for p in (workdir / "logs").glob("app-*.log")}
    return sorted(names)


def _run(args: argparse.Namespace) -> int:
    from cluster.local.logs import MeshLogs, select
    from cluster.local.state import MeshStateFile, state_dir

    workdir = args.workdir
    if workdir is None:
        record = MeshStateFile.read(state_dir() / "local.json")
        if record is None:
            print("error: no local mesh is up (meshplay up), and no --workdir", file=sys.stderr)
            return 2
        workdir = Path(record.workdir)
    if not (workdir / "access").is_dir():
        print(f"error: {workdir} is not a local mesh's folder (no access/ logs)", file=sys.stderr)
        return 2
    logs = MeshLogs.of_workdir(workdir, _pods(workdir))
    chosen = {"request_id": args.request_id, "trace_id": args.trace, "proxy": args.proxy}
    lines = select(logs.read(), **chosen)
    if args.tail:
        lines = lines[-args.tail :]
    for line in lines:
        print(line.render())
    if not args.follow:
        return 0 if lines else 1
    try:
        while True:
            time.sleep(0.5)
            for line in select(logs.read(), **chosen):
                print(line.render(), flush=True)
    except KeyboardInterrupt:
        return 0
