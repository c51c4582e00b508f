"""Envoy names are spelled in :mod:`mesh.envoy_api` only.

A cluster name, an extension name or a type URL typed by hand somewhere else drifts the day
istiod or Envoy renames it (and a misspelt ``@type`` on an empty message even passes
``envoy --mode validate``). This test reads every string literal (docstrings aside) of the
packages below and fails on one that spells such a name instead of importing it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCANNED = ("mesh", "cluster", "playground", "tui")
"""Packages held to the rule (``sim`` joins when its own names are routed)."""

THE_NAMES_MODULES = ROOT / "mesh" / "envoy_api"

PENDING: dict[str, str] = {}
"""Files known to still spell a name, with what to do; each entry must still be needed."""

SPELLED = re.compile(
    r"^type\.googleapis\.com/"  # a type URL
    r"|^envoy\.[a-z_]+(\.[A-Za-z0-9_]+)*$"  # an extension name: envoy.filters.http.router, ...
    r"|(^|[^a-z])(outbound|inbound)\|"  # an istiod cluster / route / vhost name
    r"|^outbound_\."  # an SNI
    r"|^(Passthrough|BlackHole|InboundPassthrough)Cluster$"
    r"|^virtual(In|Out)bound"
    r"|^PassthroughFilterChain$"
)


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    found.add(id(stmt.value))
    return found


def spelled_names(path: Path) -> list[str]:
    """``line: literal`` for each string literal in ``path`` that spells an Envoy name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    return [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and SPELLED.search(node.value)
    ]


def test_the_pattern_catches_each_kind_of_name() -> None:
    for literal in (
        "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "envoy.filters.http.router",
        "envoy.transport_socket_match",
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        "inbound|http|9080",
        "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
        "PassthroughCluster",
        "virtualInbound-blackhole",
    ):
        assert SPELLED.search(literal), literal
    for literal in ("envoy", "envoy --mode validate", "outbound", "an inbound request"):
        assert not SPELLED.search(literal), literal


def test_no_envoy_name_is_spelled_outside_mesh_envoy_api() -> None:
    offenders: dict[str, list[str]] = {}
    for package in SCANNED:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(THE_NAMES_MODULES):
                continue
            found = spelled_names(path)
            if found:
                offenders[path.relative_to(ROOT).as_posix()] = found
    unexpected = {f: lines for f, lines in offenders.items() if f not in PENDING}
    assert not unexpected, "spell these through mesh.envoy_api.names / type_urls instead: " + repr(
        unexpected
    )
    stale = sorted(set(PENDING) - set(offenders))
    assert not stale, f"no longer spells a name, drop it from PENDING: {stale}"
