"""Envoy's route matchers: path (prefix, exact path, RE2 regex), headers and query parameters.

Semantics follow ``envoy.config.route.v3.RouteMatch``: exact and prefix comparisons are
case-sensitive unless ``case_sensitive: false`` (which regex ignores); a regex must match the
whole path (without the query string); a header matcher with ``invert_match`` negates its result,
and ``treat_missing_header_as_empty`` lets an absent header compare as ``""`` (Istio's
``withoutHeaders``). Pseudo headers ``:method``, ``:authority`` and ``:scheme`` are matched like
any other header.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.protojson import wrapped_bool
from sim.re2 import compile_re2

__all__ = [
    "HeaderMatcher",
    "HeaderValues",
    "PathMatcher",
    "QueryMatcher",
    "StringMatcher",
    "header_list",
    "header_matcher",
    "query_matcher",
    "split_path",
]


class HeaderValues(str):
    """A header sent more than once: reads as the values joined with ``,`` (as Envoy joins
    them for the upstream), while a header matcher tests each value on its own: Envoy 1.40's
    route header matchers match when any one value does."""

    values: tuple[str, ...]

    def __new__(cls, values: tuple[str, ...]) -> HeaderValues:
        text = super().__new__(cls, ",".join(values))
        text.values = values
        return text


def header_list(values: tuple[str, ...]) -> str:
    """One header's values: a plain string when there is one, else :class:`HeaderValues`."""
    return values[0] if len(values) == 1 else HeaderValues(values)


@functools.lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str, dict[str, str] | None]:
    """``/a?x=1&y`` -> (``/a``, ``{"x": "1", "y": ""}``); no query -> (path, None)."""
    base, sep, query = path.partition("?")
    if not sep:
        return base, None
    params: dict[str, str] = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params.setdefault(key, value)
    return base, params


@dataclass(frozen=True, slots=True)
class StringMatcher:
    """``type.matcher.v3.StringMatcher``."""

    kind: str  # exact | prefix | suffix | contains | regex
    value: str
    ignore_case: bool = False
    regex: re.Pattern[str] | None = None

    @classmethod
    def from_envoy(cls, m: Mapping[str, Any]) -> StringMatcher:
        """Compile a StringMatcher dict."""
        ignore = wrapped_bool(m.get("ignore_case"), False)
        if "safe_regex" in m:
            pattern = str(m["safe_regex"]["regex"])
            return cls("regex", pattern, False, compile_re2(pattern))
        for kind in ("exact", "prefix", "suffix", "contains"):
            if kind in m:
                value = str(m[kind])
                return cls(kind, value.lower() if ignore else value, ignore)
        return cls("prefix", "", ignore)

    def matches(self, value: str) -> bool:
        """Whether ``value`` satisfies the matcher."""
        if self.regex is not None:
            return self.regex.fullmatch(value) is not None
        if self.ignore_case:
            value = value.lower()
        kind = self.kind
        if kind == "exact":
            return value == self.value
        if kind == "prefix":
            return value.startswith(self.value)
        if kind == "suffix":
            return value.endswith(self.value)
        return self.value in value


@dataclass(frozen=True, slots=True)
class PathMatcher:
    """The path part of a RouteMatch."""

    kind: str  # prefix | path | regex | separated
    value: str
    case_sensitive: bool = True
    regex: re.Pattern[str] | None = None

    @classmethod
    def from_envoy(cls, match: Mapping[str, Any]) -> PathMatcher:
        """Compile the path specifier of a RouteMatch dict."""
        cs = wrapped_bool(match.get("case_sensitive"), True)
        if "safe_regex" in match:
            pattern = str(match["safe_regex"]["regex"])
            return cls("regex", pattern, True, compile_re2(pattern))
        if "path" in match:
            value = str(match["path"])
            return cls("path", value if cs else value.lower(), cs)
        if "path_separated_prefix" in match:
            value = str(match["path_separated_prefix"])
            return cls("separated", value if cs else value.lower(), cs)
        value = str(match.get("prefix", "/"))
        return cls("prefix", value if cs else value.lower(), cs)

    def matches(self, path: str) -> bool:
        """Whether the request path (without query) matches."""
        if self.regex is not None:
            return self.regex.fullmatch(path) is not None
        if not self.case_sensitive:
            path = path.lower()
        kind = self.kind
        if kind == "prefix":
            return path.startswith(self.value)
        if kind == "path":
            return path == self.value
        return path == self.value or path.startswith(self.value + "/")

    @property
    def matches_everything(self) -> bool:
        """``prefix: /`` (or an empty prefix): every path that starts with ``/`` matches."""
        return self.kind == "prefix" and self.value in ("", "/")

    def describe(self) -> str:
        """``prefix /api`` style text for ``explain``."""
        return f"{self.kind} {self.value}"


@dataclass(frozen=True, slots=True)
class HeaderMatcher:
    """``config.route.v3.HeaderMatcher``."""

    name: str
    string: StringMatcher | None
    present: bool | None
    invert: bool
    missing_as_empty: bool
    range: tuple[int, int] | None = None
    """``range_match``: the value is an integer in [start, end)."""

    def matches(self, headers: Mapping[str, str]) -> bool:
        """Whether the request headers satisfy this matcher."""
        value = headers.get(self.name)
        if value is None and self.missing_as_empty:
            value = ""
        if self.present is not None:
            result = (value is not None) == self.present
        elif value is None:
            result = False
        elif type(value) is HeaderValues:
            result = any(self._value_matches(v) for v in value.values)
        else:
            result = self._value_matches(value)
        return result != self.invert

    def _value_matches(self, value: str) -> bool:
        if self.range is not None:
            return _in_range(value, self.range)
        if self.string is None:
            return True
        return self.string.matches(value)

    def describe(self) -> str:
        """``end-user exact jason`` style text for ``explain``."""
        if self.present is not None:
            text = f"{self.name} present"
        elif self.string is not None:
            text = f"{self.name} {self.string.kind} {self.string.value}"
        else:
            text = self.name
        return f"not ({text})" if self.invert else text


def _in_range(value: str, bounds: tuple[int, int]) -> bool:
    try:
        number = int(value.strip())
    except ValueError:
        return False
    return bounds[0] <= number < bounds[1]


def header_matcher(h: Mapping[str, Any]) -> HeaderMatcher:
    """Compile a HeaderMatcher dict (``string_match``, ``range_match``, ``present_match`` or the
    older ``exact_match``/``prefix_match``/``suffix_match``/``contains_match`` forms)."""
    string: StringMatcher | None = None
    bounds: tuple[int, int] | None = None
    if "string_match" in h:
        string = StringMatcher.from_envoy(h["string_match"])
    elif "exact_match" in h:
        string = StringMatcher("exact", str(h["exact_match"]))
    elif "prefix_match" in h:
        string = StringMatcher("prefix", str(h["prefix_match"]))
    elif "suffix_match" in h:
        string = StringMatcher("suffix", str(h["suffix_match"]))
    elif "contains_match" in h:
        string = StringMatcher("contains", str(h["contains_match"]))
    elif "safe_regex_match" in h:
        pattern = str(h["safe_regex_match"]["regex"])
        string = StringMatcher("regex", pattern, False, compile_re2(pattern))
    elif "range_match" in h:
        r = h["range_match"]
        bounds = (int(r.get("start", 0)), int(r.get("end", 0)))
    present = wrapped_bool(h["present_match"], True) if "present_match" in h else None
    return HeaderMatcher(
        name=str(h["name"]).lower(),
        string=string,
        present=present,
        invert=wrapped_bool(h.get("invert_match"), False),
        missing_as_empty=wrapped_bool(h.get("treat_missing_header_as_empty"), False),
        range=bounds,
    )


@dataclass(frozen=True, slots=True)
class QueryMatcher:
    """``config.route.v3.QueryParameterMatcher``."""

    name: str
    string: StringMatcher | None
    present: bool

    def matches(self, params: Mapping[str, str]) -> bool:
        """Whether the query parameters satisfy this matcher."""
        value = params.get(self.name)
        if value is None:
            return False
        if self.string is None:
            return self.present
        return self.string.matches(value)


def query_matcher(q: Mapping[str, Any]) -> QueryMatcher:
    """Compile a QueryParameterMatcher dict."""
    string = StringMatcher.from_envoy(q["string_match"]) if "string_match" in q else None
    return QueryMatcher(str(q["name"]), string, bool(q.get("present_match", string is None)))
