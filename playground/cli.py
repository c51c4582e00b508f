"""The ``meshplay`` command line: a thin layer over ``mesh`` and the runners.

Verbs mirror istioctl where they overlap (``analyze``, ``proxy-config``, ``proxy-status``) so the
skills carry over. Exit codes: 0 ok, 1 expectations failed, 2 bad configuration or usage;
``analyze`` uses istioctl analyze's own (79 issues found, 65 unreadable input).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[str, ...] = (
    "playground.commands.lessons",
    "playground.commands.analyze",
    "playground.commands.run",
    "playground.commands.exercise",
    "playground.commands.explain",
    "playground.commands.proxy_config",
    "playground.commands.authz_check",
    "playground.commands.route_check",
    "playground.commands.proxy_status",
    "playground.commands.up",
    "playground.commands.down",
    "playground.commands.compare",
    "playground.commands.cluster",
    "playground.commands.query",
    "playground.commands.traces",
    "playground.commands.graph",
    "playground.commands.logs",
    "playground.commands.tui",
)
"""Sub-command modules, each with ``register(subparsers)``; listed explicitly, in help order."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command that this build contains."""
    parser = argparse.ArgumentParser(
        prog="meshplay",
        description="The Cloud Networking Playground: learn Istio and Envoy by running them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``meshplay`` console script."""
    parser = build_parser()
    if argv is not None and any("\x00" in a for a in argv):
        # a shell cannot pass one (execve's arguments are C strings), a caller of main() can;
        # every path function would raise ValueError on it
        parser.error("an argument contains a NUL byte")
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `meshplay ... | head`: the reader left; that is not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code
