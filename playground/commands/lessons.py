"""``meshplay lessons``: list the lessons, by track, with the runners each one runs on and the
ones among them that can run here.

A lesson names its runners (``runners:`` in lesson.yaml, default ``sim, local, kube``); whether a
runner can run on this machine is a separate question: ``sim`` needs nothing, ``local`` needs the
Envoy binary, ``kube`` needs its implementation in this build and a kubeconfig. Titles are never
cut when the output is not a terminal; in a terminal they are cut to its width.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from mesh.diagnostics import DiagnosticError
from mesh.lesson import find_lessons, load_lesson
from mesh.runner import RunnerError
from playground.runners import RUNNERS, available_runners

__all__ = ["register", "runners_here"]


def register(sub: Any) -> None:
    """Add the ``lessons`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "lessons",
        help="list the lessons and the runners they run on",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", type=Path, default=Path("lessons"), help="lessons folder")
    p.set_defaults(handler=_run)


def runners_here() -> dict[str, str]:
    """Runner name -> why it cannot run on this machine (``""`` when it can)."""
    from playground.commands.tui import kube_configured

    built = set(available_runners())
    out: dict[str, str] = {}
    for name in RUNNERS:
        if name not in built:
            out[name] = "not built yet" if name == "kube" else "not in this build"
        elif name == "local":
            out[name] = _envoy_missing()
        elif name == "kube" and not kube_configured():
            out[name] = "no kubeconfig ($KUBECONFIG or ~/.kube/config)"
        else:
            out[name] = ""
    return out


def _envoy_missing() -> str:
    from cluster.local.envoy import envoy_binary

    try:
        envoy_binary()
    except RunnerError as exc:
        return str(exc)
    return ""


def _width() -> int:
    """The terminal's width, 0 (no limit) when stdout is not a terminal and $COLUMNS is unset."""
    return shutil.get_terminal_size(fallback=(0, 0)).columns


def _run(args: argparse.Namespace) -> int:
    folders = find_lessons(args.root)
    if not folders:
        print(f"no lessons under {args.root}", file=sys.stderr)
        return 2
    here = runners_here()
    broken = 0
    rows: list[tuple[str, str, str, str, str]] = []
    for folder in folders:
        try:
            lesson = load_lesson(folder)
        except DiagnosticError:
            broken += 1
            rows.append((folder.name, "?", "?", "?", "(does not load: run meshplay analyze on it)"))
            continue
        runs_on = lesson.spec.runners
        usable = [r for r in runs_on if not here.get(r, "unknown runner")]
        rows.append(
            (
                lesson.id,
                lesson.spec.track,
                ", ".join(runs_on),
                ", ".join(usable) or "-",
                lesson.title,
            )
        )
    headers = ("LESSON", "TRACK", "RUNS ON", "RUNS HERE", "TITLE")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    limit = _width()
    for row in [headers, *rows]:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        title = row[-1]
        room = limit - len(head) - 2
        if limit and len(title) > room > 10:
            title = title[: room - 1] + "\u2026"
        print(f"{head}  {title}")
    ready = [name for name, why in here.items() if not why]
    missing = [f"{name} ({why})" for name, why in here.items() if why]
    print(f"\nrunners here: {', '.join(ready) or 'none'}" + (
        f"; not here: {', '.join(missing)}" if missing else ""))  # fmt: skip
    return 2 if broken else 0
