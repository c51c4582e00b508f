"""Envoy's ``router_check_tool`` test format, run on meshplay's route matcher.

A test file (YAML or JSON) holds ``tests: [{test_name, input, validate}]``:

* ``input``: ``authority`` and ``path`` (required), ``method`` (GET when absent; 3 characters
  or more), ``random_value`` (weighted
  clusters, ``runtime_fraction``), ``ssl``, ``internal``, ``additional_request_headers`` and
  ``additional_response_headers`` (``[{key, value}]``), ``runtime``;
* ``validate``: ``cluster_name``, ``virtual_cluster_name``, ``virtual_host_name``,
  ``host_rewrite``, ``path_rewrite``, ``path_redirect``, ``code_redirect``,
  ``request_header_matches`` and ``response_header_matches`` (Envoy ``HeaderMatcher``s), and the
  deprecated ``request_header_fields``/``response_header_fields`` (``[{key, value}]``).

Each check compares what the route configuration does with the request
(:class:`Observed`, from :func:`sim.xds.decide.decide`) with the expected value, and says so in
Envoy's words: ``expected: [X], actual: [Y], test type: cluster_name``. Problems in either file
are positioned diagnostics (``MPY1101`` Envoy would refuse it, ``MPY2101`` not modelled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.diagnostics import Diagnostic
from mesh.model.common import SourcePosition
from mesh.source.yaml_nodes import parse_documents
from sim.matchers import HeaderMatcher, header_matcher
from sim.protojson import INVALID, NOT_MODELLED, Issue, canonical, unwrap
from sim.re2 import RegexError
from sim.xds import RouteTable, compile_route_config
from sim.xds.decide import RouteDecision, RouteInput, decide

__all__ = [
    "Check",
    "Loaded",
    "Observed",
    "RouteTest",
    "load_route_config",
    "load_tests",
    "observe",
    "run_checks",
]

_STRING_CHECKS = (
    "cluster_name",
    "virtual_cluster_name",
    "virtual_host_name",
    "host_rewrite",
    "path_rewrite",
    "path_redirect",
)
_INPUT_FIELDS = frozenset(
    {"authority", "path", "method", "random_value", "ssl", "internal",
     "additional_request_headers", "additional_response_headers", "runtime"}
)  # fmt: skip
_VALIDATE_FIELDS = frozenset(
    {*_STRING_CHECKS, "code_redirect", "request_header_matches", "response_header_matches",
     "request_header_fields", "response_header_fields"}
)  # fmt: skip
_VALIDATE_NOT_MODELLED = frozenset({"dynamic_metadata"})


@dataclass(frozen=True, slots=True)
class Loaded:
    """A parsed file: its data and where each path of it sits."""

    file: str
    data: Any
    positions: Mapping[tuple[str | int, ...], SourcePosition]

    def diagnostic(
        self, code: str, message: str, path: Sequence[str | int], hint: str = ""
    ) -> Diagnostic:
        """A diagnostic at ``path`` (a canonical, snake_case path: mapped to the file's own
        spelling; the nearest enclosing value when the exact one has no position)."""
        raw: list[str | int] = []
        node = self.data
        for part in path:
            if isinstance(part, int) and isinstance(node, list) and part < len(node):
                raw.append(part)
                node = node[part]
            elif isinstance(part, str) and isinstance(node, Mapping):
                key = next((k for k in node if _snake(str(k)) == part), None)
                if key is None:
                    break
                raw.append(key)
                node = node[key]
            else:
                break
        where = tuple(raw)
        while where not in self.positions and where:
            where = where[:-1]
        pos = self.positions.get(where)
        shown = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(
            ".[", "["
        )
        return Diagnostic(code, message, file=self.file, line=pos.line if pos else 0,
                          column=pos.column if pos else 0, path=shown, hint=hint)  # fmt: skip


def _snake(key: str) -> str:
    return canonical({key: None}).popitem()[0]  # type: ignore[no-any-return]


def _load(path: str) -> tuple[Loaded | None, list[Diagnostic]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Diagnostic("MPY1006", f"cannot read {path}: {exc}", file=path)]
    docs, found = parse_documents(text, path)
    if found:
        return None, found
    if len(docs) != 1 or not isinstance(docs[0].data, Mapping):
        return None, [
            Diagnostic(INVALID, "expected one YAML/JSON object", file=path, line=1, column=1)
        ]
    return Loaded(path, docs[0].data, docs[0].positions), []


def load_route_config(path: str) -> tuple[RouteTable | None, dict[str, Any], list[Diagnostic]]:
    """The RouteConfiguration in ``path`` (also accepted: an object with ``route_config``, as in
    an HTTP connection manager): its compiled table, its canonical dict and the diagnostics."""
    loaded, found = _load(path)
    if loaded is None:
        return None, {}, found
    rc = canonical(loaded.data)
    prefix: tuple[str, ...] = ()
    if "route_config" in rc and "virtual_hosts" not in rc:
        rc, prefix = rc["route_config"], ("route_config",)
    if not isinstance(rc, Mapping) or not isinstance(rc.get("virtual_hosts"), list):
        return (
            None,
            {},
            [
                loaded.diagnostic(
                    INVALID, "no virtual_hosts: not an Envoy RouteConfiguration", prefix
                )
            ],
        )
    issues: list[Issue] = []
    try:
        table = compile_route_config(rc, issues)
    except (KeyError, TypeError, ValueError) as exc:
        return (
            None,
            {},
            [loaded.diagnostic(INVALID, f"cannot read the route configuration: {exc}", prefix)],
        )
    diagnostics = [
        loaded.diagnostic(
            i.code,
            i.message,
            (*prefix, *i.path),
            "meshplay cannot answer as Envoy would here, so route-check refuses rather than guess"
            if i.code == NOT_MODELLED
            else "Envoy refuses this configuration",
        )
        for i in issues
    ]
    return table, dict(rc), diagnostics


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of a test: a ``validate`` field, or one header matcher."""

    kind: str  # a _STRING_CHECKS name, code_redirect, request_header_matches...
    expected: str = ""
    matcher: HeaderMatcher | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouteTest:
    """A test case: its name, the request and the checks."""

    name: str
    request: RouteInput
    checks: tuple[Check, ...]
    response_headers: tuple[tuple[str, str], ...] = ()

    def header_names(self) -> tuple[str, ...]:
        """The request header names the checks look at (the echo must report them)."""
        return tuple(
            c.matcher.name if c.matcher is not None else str(c.raw["key"])
            for c in self.checks
            if c.kind in ("request_header_matches", "request_header_fields")
        )


def _header_values(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(h.get("key", "")), str(h.get("value", ""))) for h in items or ())


def _checks(validate: Mapping[str, Any], loaded: Loaded, at: tuple[str | int, ...],
            found: list[Diagnostic]) -> list[Check]:  # fmt: skip
    checks = [
        Check(name, str(unwrap(validate[name]) or ""))
        for name in _STRING_CHECKS
        if name in validate
    ]
    if "code_redirect" in validate:
        checks.append(Check("code_redirect", str(int(unwrap(validate["code_redirect"]) or 0))))
    for kind in ("request_header_matches", "response_header_matches"):
        for j, m in enumerate(validate.get(kind) or ()):
            try:
                checks.append(Check(kind, matcher=header_matcher(m), raw=m))
            except (KeyError, RegexError) as exc:
                found.append(
                    loaded.diagnostic(INVALID, f"bad header matcher: {exc}", (*at, kind, j))
                )
    for kind in ("request_header_fields", "response_header_fields"):
        for key, value in _header_values(validate.get(kind)):
            checks.append(Check(kind, value, raw={"key": key.lower()}))
    return checks


def _test(item: Any, i: int, loaded: Loaded, found: list[Diagnostic]) -> RouteTest | None:
    at: tuple[str | int, ...] = ("tests", i)
    before = len(found)
    if not isinstance(item, Mapping):
        found.append(loaded.diagnostic(INVALID, "a test is an object", at))
        return None
    found.extend(
        loaded.diagnostic(INVALID, f"unknown field {key!r} in a test", (*at, key))
        for key in item
        if key not in ("test_name", "input", "validate")
    )
    name = str(item.get("test_name") or "")
    if not name:
        found.append(loaded.diagnostic(INVALID, "test_name is required (non-empty)", at))
    inp = item.get("input")
    validate = item.get("validate")
    if not isinstance(inp, Mapping) or not isinstance(validate, Mapping):
        found.append(loaded.diagnostic(INVALID, "input and validate are required objects", at))
        return None
    found.extend(
        loaded.diagnostic(INVALID, f"unknown input field {key!r}", (*at, "input", key))
        for key in inp
        if key not in _INPUT_FIELDS
    )
    for key in validate:
        if key in _VALIDATE_NOT_MODELLED:
            found.append(
                loaded.diagnostic(
                    NOT_MODELLED, f"validate.{key} is not modelled", (*at, "validate", key)
                )
            )
        elif key not in _VALIDATE_FIELDS:
            found.append(
                loaded.diagnostic(
                    INVALID, f"unknown validate field {key!r}", (*at, "validate", key)
                )
            )
    for key, least in (("authority", 1), ("path", 1), ("method", 3)):
        if key == "method" and "method" not in inp:
            continue  # optional in Envoy's tool; GET here (a request needs one to be sent)
        if len(str(inp.get(key) or "")) < least:
            what = "is required" if key != "method" else "must have 3 characters or more"
            found.append(loaded.diagnostic(INVALID, f"input.{key} {what}", (*at, "input")))
    checks = _checks(validate, loaded, at, found)
    if len(found) > before:
        return None
    request = RouteInput(
        authority=str(inp["authority"]),
        path=str(inp["path"]),
        method=str(inp.get("method") or "GET"),
        headers=_header_values(inp.get("additional_request_headers")),
        ssl=bool(unwrap(inp.get("ssl")) or False),
        internal=bool(unwrap(inp.get("internal")) or False),
        random_value=int(unwrap(inp.get("random_value")) or 0),
    )
    return RouteTest(
        name, request, tuple(checks), _header_values(inp.get("additional_response_headers"))
    )


def load_tests(path: str) -> tuple[list[RouteTest], list[Diagnostic]]:
    """The tests in ``path``, or the diagnostics that say why they cannot run."""
    loaded, found = _load(path)
    if loaded is None:
        return [], found
    data = canonical(loaded.data)
    items = data.get("tests")
    if not isinstance(items, list) or not items:
        return [], [
            loaded.diagnostic(INVALID, "tests: at least one test case is required", ("tests",))
        ]
    tests = [t for i, item in enumerate(items) if (t := _test(item, i, loaded, found)) is not None]
    return tests, found


@dataclass(slots=True)
class Observed:
    """What a data plane did with a test's request, in the terms the checks use. ``None``: not
    known (not observable this way), which no check holds against."""

    cluster_name: str | None = ""
    virtual_cluster_name: str | None = ""
    virtual_host_name: str | None = ""
    host_rewrite: str | None = ""
    path_rewrite: str | None = ""
    path_redirect: str | None = ""
    code_redirect: str | None = "0"
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    route: tuple[int, int] | None = None
    """(virtual host index, route index) of the route that took the request."""


def observe(table: RouteTable, test: RouteTest) -> tuple[Observed, RouteDecision]:
    """meshplay's answer for ``test``: :func:`sim.xds.decide.decide` in the checks' terms."""
    d = decide(table, test.request)
    obs = Observed(request_headers=d.request_headers)
    if d.route is not None and d.vhost is not None:
        obs.route = (table.vhosts.index(d.vhost), d.route.index)
    if d.route_entry and d.vhost is not None:
        obs.cluster_name = d.cluster
        obs.virtual_cluster_name = d.virtual_cluster
        obs.virtual_host_name = d.vhost.name
        obs.host_rewrite = d.request_headers.get(":authority", "")
        obs.path_rewrite = d.request_headers.get(":path", "")
    if d.direct:
        obs.path_redirect = d.location
        obs.code_redirect = str(d.code)
    response = dict(test.response_headers)
    obs.response_headers = {**{k.lower(): v for k, v in response.items()}, **d.response_headers}
    return obs, d


def _header_failure(check: Check, headers: Mapping[str, str]) -> str | None:
    m = check.matcher
    assert m is not None
    if m.matches(headers):
        return None
    value = headers.get(m.name)
    shown = "NULL" if value is None else value
    kind = check.kind
    if m.present is not None or (m.string is None and m.range is None):
        yes = "false" if m.invert else "true"
        no = "true" if m.invert else "false"
        return f"expected: [has({m.name}):{yes}], actual: [has({m.name}):{no}], test type: {kind}.present_match"
    if m.string is not None and m.string.kind == "exact":
        neg = "NOT " if m.invert else ""
        return (f"expected: [{m.name}: {m.string.value}], actual: {neg}[{m.name}: {shown}], "
                f"test type: {kind}.string_match.exact")  # fmt: skip
    return f"actual: [{m.name}: {shown}], test type: {kind}"


def run_checks(test: RouteTest, obs: Observed) -> list[str]:
    """The failed checks of ``test`` against ``obs``, each in router_check_tool's words."""
    failures: list[str] = []
    for check in test.checks:
        if check.kind in _STRING_CHECKS or check.kind == "code_redirect":
            actual = getattr(obs, check.kind)
            if actual is not None and actual != check.expected:
                failures.append(
                    f"expected: [{check.expected}], actual: [{actual}], test type: {check.kind}"
                )
        elif check.matcher is not None:
            headers = (
                obs.request_headers if check.kind.startswith("request") else obs.response_headers
            )
            failure = _header_failure(check, headers)
            if failure is not None:
                failures.append(failure)
        else:
            headers = (
                obs.request_headers if check.kind.startswith("request") else obs.response_headers
            )
            actual = headers.get(str(check.raw["key"]), "")
            if actual != check.expected:
                failures.append(
                    f"expected: [{check.expected}], actual: [{actual}], test type: {check.kind}"
                )
    return failures
