"""Unreachable VirtualService rules and ineffective matches (IST0130, IST0131).

Envoy tries a VirtualService's rules in order and takes the first that matches, so istiod's
validation warns about rules that can never win (``validation.go``'s
``analyzeUnreachable*Rules``), and istioctl reports those warnings with their own codes:

* IST0130 VirtualServiceUnreachableRule: a second rule without ``match`` ("only the last rule can
  have no matches"), any rule after a rule without ``match`` ("route without matches defined
  before"), or a rule every match of which repeats an earlier one ("all matches used by prior
  rules");
* IST0131 VirtualServiceIneffectiveMatch: one match identical to an earlier match (names
  ignored), or an HTTP ``uri.prefix`` match covered by an earlier, shorter prefix with the same
  port, method, authority, headers, query parameters and withoutHeaders.

Rules are named as istiod names them: ``"name"`` for a named HTTP rule, else ``#index``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from mesh.analyze.common import Path, diag, go_quote, of_kind
from mesh.diagnostics import Diagnostic
from mesh.model import Resource, StringMatch, VirtualService
from mesh.model.virtual_service import HTTPMatchRequest, HTTPRoute
from mesh.topology import Topology

__all__ = ["check_unreachable_rules"]


def _rule_name(rule: object, index: int) -> str:
    if isinstance(rule, HTTPRoute) and rule.name:
        return go_quote(rule.name)
    return f"#{index}"


def _match_name(match: object, index: int) -> str:
    if isinstance(match, HTTPMatchRequest) and match.name:
        return go_quote(match.name)
    return f"#{index}"


def _identity(match: object) -> Hashable:
    """What makes two matches the same (an HTTP match's name does not count)."""
    if isinstance(match, HTTPMatchRequest):
        return dataclasses.replace(match, name="")
    assert isinstance(match, Hashable)
    return match


def _unused(vs: VirtualService, rule: str, path: Path, reason: str) -> Diagnostic:
    return diag("IST0130", vs, path, f"VirtualService rule {rule} not used ({reason}).",
                "order rules from the most specific match to the catch-all, which goes last")  # fmt: skip


def _ineffective(vs: VirtualService, rule: str, match: str, dup: str, path: Path) -> Diagnostic:
    return diag("IST0131", vs, path,
                f"VirtualService rule {rule} match {match} is not used (duplicate/overlapping match "
                f"in rule {dup}).",
                "remove the match, or move it before the rule that takes its requests")  # fmt: skip


def _match_list(rule: object) -> Sequence[object]:
    match = getattr(rule, "match", ())
    assert isinstance(match, tuple)
    return match


def _ordered_rules(vs: VirtualService, kind: str, rules: Sequence[object]) -> Iterator[Diagnostic]:
    """The duplicate and catch-all analysis istiod runs on http, tcp and tls rules alike."""
    seen: dict[Hashable, int] = {}
    catch_all = -1
    for n, rule in enumerate(rules):
        path: Path = ("spec", kind, n)
        matches = _match_list(rule)
        if not matches:
            if catch_all >= 0:
                yield _unused(
                    vs, _rule_name(rule, n), path, "only the last rule can have no matches"
                )
            catch_all = n
            continue
        duplicates = 0
        for m_index, match in enumerate(matches):
            if catch_all >= 0:
                yield _unused(vs, _rule_name(rule, n), path, "route without matches defined before")
                continue
            key = _identity(match)
            if key in seen:
                dup = seen[key]
                yield _ineffective(vs, _rule_name(rule, n), _match_name(match, m_index),
                                   _rule_name(rules[dup], dup), (*path, "match", m_index))  # fmt: skip
                duplicates += 1
                continue
            seen[key] = n
        if duplicates == len(matches):
            yield _unused(vs, _rule_name(rule, n), path, "all matches used by prior rules")


@dataclass(frozen=True, slots=True)
class _PrefixMatch:
    """An HTTP match with a ``uri.prefix``, reduced to what istiod compares for overlaps."""

    rule: str
    match: str
    path: Path
    prefix: str
    port: int
    method: str
    authority: str
    headers: Mapping[str, str]
    query_params: Mapping[str, str]
    without_headers: Mapping[str, str]


def _exact_or_prefix(m: StringMatch | None) -> str:
    if m is None:
        return ""
    if m.exact:
        return "exact:" + m.exact
    if m.prefix:
        return "prefix:" + m.prefix
    return ""


def _prefix_match(route: HTTPRoute, n: int, match: HTTPMatchRequest, k: int) -> _PrefixMatch | None:
    if match.uri is None or not match.uri.prefix:
        return None
    return _PrefixMatch(
        rule=_rule_name(route, n),
        match=_match_name(match, k),
        path=("spec", "http", n, "match", k),
        prefix=match.uri.prefix,
        port=match.port or 0,
        method=_exact_or_prefix(match.method) or "exact:GET",  # istiod assumes GET when unset
        authority=_exact_or_prefix(match.authority),
        headers={h: _exact_or_prefix(v) for h, v in match.headers.items()},
        query_params={q: _exact_or_prefix(v) for q, v in match.query_params.items()},
        without_headers={h: _exact_or_prefix(v) for h, v in match.without_headers.items()},
    )


def _same_or_prefix(a: str, b: str) -> bool:
    return a == b or a.startswith(b)


def _maps_cover(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    if len(a) != len(b):
        return False
    return all(k in b and _same_or_prefix(v, b[k]) for k, v in a.items())


def _covers(a: _PrefixMatch, b: _PrefixMatch) -> bool:
    """istiod's ``coveredValidation``: whether earlier match ``a`` takes every request of ``b``."""
    return (
        b.prefix.startswith(a.prefix)
        and a.port == b.port
        and _same_or_prefix(a.method, b.method)
        and _same_or_prefix(a.authority, b.authority)
        and _maps_cover(a.headers, b.headers)
        and _maps_cover(a.query_params, b.query_params)
        and _maps_cover(a.without_headers, b.without_headers)
    )


def _http_overlaps(vs: VirtualService) -> list[_PrefixMatch]:
    """The prefix matches istiod compares: first occurrences only, none after a catch-all."""
    seen: set[Hashable] = set()
    out: list[_PrefixMatch] = []
    for n, route in enumerate(vs.http):
        if not route.match:
            return out
        for k, match in enumerate(route.match):
            key = _identity(match)
            if key in seen:
                continue
            seen.add(key)
            found = _prefix_match(route, n, match, k)
            if found is not None:
                out.append(found)
    return out


def check_unreachable_rules(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0130 rules that can never match; IST0131 matches that never apply."""
    del topo
    for vs in of_kind(resources, VirtualService):
        for kind, rules in (("http", vs.http), ("tcp", vs.tcp), ("tls", vs.tls)):
            yield from _ordered_rules(vs, kind, rules)
        prefixes = _http_overlaps(vs)
        for i, a in enumerate(prefixes):
            for b in prefixes[i + 1 :]:
                if b.prefix != a.prefix and _covers(a, b):
                    yield _ineffective(vs, b.rule, f"{b.match} of prefix {b.prefix}",
                                       f"{a.match} of prefix {a.prefix} on {a.rule}", b.path)  # fmt: skip
