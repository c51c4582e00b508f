"""Shared value types of the resource model: maps, durations, percents, string matches, metadata.

Everything here is immutable and hashable so resources can be shared between the translator, the
simulator and TUI worker threads, compared by ``==`` in golden tests, and derived with
``dataclasses.replace``. This module imports only the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = [
    "Duration",
    "FrozenMap",
    "JsonValue",
    "LabelsWorkloadSelector",
    "ObjectMeta",
    "Percent",
    "PortSelector",
    "Resource",
    "SourceMap",
    "SourcePosition",
    "StringMatch",
    "WorkloadSelector",
    "yaml_name",
]

JsonValue = Any
"""A google.protobuf.Struct/Value: any JSON-shaped value, kept as parsed (EnvoyFilter patches)."""

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """A read-only, hashable mapping (labels, headers, selectors) that keeps insertion order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"


_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m(?!s)|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True, slots=True)
class Duration:
    """A google.protobuf.Duration as Istio YAML writes it ("1.5s", "100ms", "1h2m")."""

    seconds: float

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse Istio's duration syntax; raises ValueError with the accepted forms on bad input."""
        text = text.strip()
        if not text or not _DURATION_RE.match(text):
            raise ValueError(
                f'invalid duration "{text}": use a number with a unit, e.g. "250ms", "1.5s", "2m"'
            )
        total = 0.0
        for number, unit in _DURATION_PART.findall(text):
            total += float(number) * _UNIT_SECONDS[unit]
        return cls(total)

    @property
    def ms(self) -> float:
        """The duration in milliseconds."""
        return self.seconds * 1000.0

    def __str__(self) -> str:
        if self.seconds == 0:
            return "0s"
        if self.seconds < 1 and round(self.seconds * 1000, 6).is_integer():
            return f"{round(self.seconds * 1000)}ms"
        return f"{self.seconds:g}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class Percent:
    """istio.networking.v1.Percent: a double in [0, 100]."""

    value: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class StringMatch:
    """istio.networking.v1.StringMatch: exactly one of exact, prefix or regex (RE2 syntax)."""

    ONEOF: ClassVar[tuple[tuple[str, ...], ...]] = (("exact", "prefix", "regex"),)

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @property
    def kind(self) -> str:
        """Which of the oneof fields is set ("exact", "prefix", "regex" or "" for an empty match)."""
        if self.exact is not None:
            return "exact"
        if self.prefix is not None:
            return "prefix"
        if self.regex is not None:
            return "regex"
        return ""

    @property
    def value(self) -> str:
        """The value of the set field."""
        return (
            self.exact
            if self.exact is not None
            else (self.prefix if self.prefix is not None else (self.regex or ""))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSelector:
    """istio.type.v1beta1.WorkloadSelector (security policies, DestinationRule): pods whose labels
    contain all of ``match_labels``."""

    match_labels: FrozenMap[str, str] = field(default_factory=FrozenMap)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod with ``labels`` is selected (an empty selector selects every pod)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelsWorkloadSelector:
    """istio.networking.v1.WorkloadSelector (Sidecar, EnvoyFilter, ServiceEntry): ``labels``.

    The networking API spells the field ``labels`` where the security API's selector says
    ``matchLabels``; ``match_labels`` is offered too so callers can treat both selectors alike.
    """

    labels: FrozenMap[str, str] = field(default_factory=FrozenMap)

    @property
    def match_labels(self) -> FrozenMap[str, str]:
        """The labels, under the security selector's name."""
        return self.labels

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod with ``labels`` is selected (an empty selector selects every pod)."""
        return all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True, slots=True, kw_only=True)
class PortSelector:
    """istio.networking.v1.PortSelector."""

    number: int = 0


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a value came from: file and 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SourceMap:
    """Field path -> position of the YAML node that produced it, for one resource.

    Paths are tuples of keys and indexes as they appear in the YAML (camelCase keys), e.g.
    ``("spec", "http", 0, "route", 1, "destination", "subset")``.
    """

    __slots__ = ("_positions", "origin")

    def __init__(
        self, origin: SourcePosition, positions: Mapping[tuple[str | int, ...], SourcePosition]
    ) -> None:
        self.origin = origin
        self._positions = dict(positions)

    def position(self, path: tuple[str | int, ...]) -> SourcePosition:
        """The position of ``path``, or of its nearest ancestor that has one."""
        while path:
            found = self._positions.get(path)
            if found is not None:
                return found
            path = path[:-1]
        return self._positions.get((), self.origin)

    def key_position(self, path: tuple[str | int, ...]) -> SourcePosition:
        """The position of the *key* of ``path`` (for unknown-field diagnostics)."""
        found = self._positions.get((*path, "<key>"))
        return found if found is not None else self.position(path)

    @classmethod
    def empty(cls, file: str = "<memory>") -> SourceMap:
        """A map for resources built in code."""
        return cls(SourcePosition(file, 1, 1), {})


def yaml_name(name: str) -> str:
    """The YAML (camelCase) spelling of a snake_case field name."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectMeta:
    """The subset of Kubernetes ObjectMeta the mesh reads."""

    name: str
    namespace: str = ""
    labels: FrozenMap[str, str] = field(default_factory=FrozenMap)
    annotations: FrozenMap[str, str] = field(default_factory=FrozenMap)


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """Base of every loaded resource: its metadata and where it came from.

    Subclasses declare ``API_GROUP``, ``API_VERSIONS`` (accepted versions), ``KIND``, ``PLURAL`` and
    whether the YAML ``spec`` is decoded into the class's own fields (Istio kinds, whose class *is*
    the istio/api message) or into a ``spec`` field (Kubernetes kinds, as in the Kubernetes API).
    """

    API_GROUP: ClassVar[str] = ""
    API_VERSIONS: ClassVar[tuple[str, ...]] = ("v1",)
    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""
    NAMESPACED: ClassVar[bool] = True
    SPEC_INLINE: ClassVar[bool] = True

    metadata: ObjectMeta
    api_version: str = ""
    source: SourceMap = field(default_factory=SourceMap.empty, compare=False, repr=False)

    @property
    def name(self) -> str:
        """metadata.name"""
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """metadata.namespace (already defaulted by the loader)."""
        return self.metadata.namespace

    @property
    def ref(self) -> str:
        """``Kind ns/name`` as diagnostics print it."""
        if self.NAMESPACED:
            return f"{self.KIND} {self.metadata.namespace}/{self.metadata.name}"
        return f"{self.KIND} {self.metadata.name}"
