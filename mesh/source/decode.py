"""The generic decoder: YAML values -> frozen model dataclasses, with diagnostics.

It is driven by each dataclass's fields and type hints, so the model classes hold no parsing code.
It handles ``X | None``, ``int | str``, ``tuple[X, ...]``, ``FrozenMap[K, V]``, enums, nested
dataclasses, durations and raw JSON values. Unknown keys are schema errors with a "did you mean";
keys listed in a class's ``UNMODELLED`` (valid Istio fields meshplay does not act on) and
``IGNORED`` (valid Kubernetes fields with no mesh effect) are reported, never dropped silently.
The decoder is total: any input yields a value or ``None`` plus diagnostics, never an exception.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin

from mesh.diagnostics import Diagnostic, did_you_mean, format_path
from mesh.model.common import Duration, FrozenMap, Resource, SourceMap, yaml_name

__all__ = ["Decoder", "type_name"]

T = TypeVar("T")
Path = tuple[str | int, ...]
_MISSING = object()


def type_name(value: object) -> str:
    """The YAML-ish name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: Any) -> dict[str, dataclasses.Field[Any]]:
    """YAML key -> dataclass field, for the decodable fields of ``cls``.

    Keys are camelCase (Kubernetes/Istio style) unless the class sets ``YAML_KEYS = "snake"``
    (meshplay's own lesson format).
    """
    snake = getattr(cls, "YAML_KEYS", "camel") == "snake"
    envelope = {"metadata", "api_version", "source"} if issubclass(cls, Resource) else set()
    renames: Mapping[str, str] = getattr(cls, "YAML_RENAMES", {})
    return {
        renames.get(f.name) or (f.name.rstrip("_") if snake else yaml_name(f.name)): f
        for f in dataclasses.fields(cls)
        if f.init and f.name not in envelope
    }


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is str:
        return "a string"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is Duration:
        return 'a duration such as "1s" or "250ms"'
    if origin is tuple:
        return "a list"
    if origin is FrozenMap or (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
        return "a mapping"
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(str(m.value) for m in tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return "a value"


class Decoder:
    """Decodes one document's values, collecting diagnostics against its source map."""

    def __init__(self, source: SourceMap, resource: str, schema_code: str) -> None:
        self.source = source
        self.resource = resource
        self.schema_code = schema_code
        self.diagnostics: list[Diagnostic] = []

    # -- reporting ---------------------------------------------------------------------------
    def report(
        self, code: str, path: Path, message: str, hint: str = "", *, key: bool = False
    ) -> None:
        """Record a diagnostic at ``path`` (at the key itself when ``key`` is set)."""
        pos = self.source.key_position(path) if key else self.source.position(path)
        self.diagnostics.append(
            Diagnostic(
                code,
                message,
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=self.resource,
                path=format_path(path),
                hint=hint,
            )
        )

    def error(self, path: Path, message: str, hint: str = "", *, key: bool = False) -> None:
        """A schema error with this decoder's code."""
        self.report(self.schema_code, path, message, hint, key=key)

    # -- decoding ----------------------------------------------------------------------------
    def decode(self, tp: Any, value: Any, path: Path) -> Any:
        """Decode ``value`` as type ``tp``; returns ``_MISSING`` (reported) when impossible."""
        origin = get_origin(tp)
        if tp is Any:
            return _freeze_json(value)
        if origin in (Union, types.UnionType):
            return self._union(tp, value, path)
        if value is None:
            self.error(path, f"expected {_describe(tp)}, got null")
            return _MISSING
        if tp is str:
            if isinstance(value, str):
                return value
            hint = f'quote it: "{value}"' if isinstance(value, int | float | bool) else ""
            self.error(path, f"expected a string, got {type_name(value)}", hint)
            return _MISSING
        if tp is bool:
            if isinstance(value, bool):
                return value
            self.error(path, f"expected true or false, got {type_name(value)}")
            return _MISSING
        if tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                return int(value)
            self.error(path, f"expected an integer, got {type_name(value)} {_short(value)}")
            return _MISSING
        if tp is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            self.error(path, f"expected a number, got {type_name(value)} {_short(value)}")
            return _MISSING
        if tp is Duration:
            return self._duration(value, path)
        if isinstance(tp, type) and issubclass(tp, Enum):
            return self._enum(tp, value, path)
        if origin is tuple:
            return self._tuple(get_args(tp)[0], value, path)
        if origin is FrozenMap:
            key_tp, value_tp = get_args(tp)
            return self._map(key_tp, value_tp, value, path)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        raise TypeError(f"decoder does not handle {tp!r}")  # a model bug, caught by tests

    def _union(self, tp: Any, value: Any, path: Path) -> Any:
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(get_args(tp)):
            return None
        if len(args) == 1:
            return self.decode(args[0], value, path)
        for arg in args:  # e.g. int | str (IntOrString): pick by the value's own type
            if arg is int and isinstance(value, int) and not isinstance(value, bool):
                return value
            if arg is str and isinstance(value, str):
                return value
        classes = [a for a in args if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if classes and isinstance(value, dict):
            # A union of messages (a oneof of shapes): the class that knows every key wins.
            keys = {k for k in value if isinstance(k, str)}
            best = max(classes, key=lambda c: len(keys & set(_fields(c))))
            return self.dataclass(best, value, path)
        self.error(path, f"expected {_describe(tp)}, got {type_name(value)}")
        return _MISSING

    def _duration(self, value: Any, path: Path) -> Any:
        if isinstance(value, str):
            try:
                return Duration.parse(value)
            except ValueError as exc:
                self.error(path, str(exc))
                return _MISSING
        hint = f'write "{value}s" for {value} seconds' if isinstance(value, int | float) else ""
        self.error(path, f"expected a duration string, got {type_name(value)}", hint)
        return _MISSING

    def _enum(self, tp: type[Enum], value: Any, path: Path) -> Any:
        names = [str(m.value) for m in tp]
        if isinstance(value, str) and value in names:
            return tp(value)
        shown = f'"{value}"' if isinstance(value, str) else type_name(value)
        hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
        self.error(path, f"invalid value {shown}: expected one of {', '.join(names)}", hint)
        return _MISSING

    def _tuple(self, item_tp: Any, value: Any, path: Path) -> Any:
        if not isinstance(value, list):
            hint = "write it as a list: [ ... ] or '- item' lines" if value is not None else ""
            self.error(path, f"expected a list, got {type_name(value)}", hint)
            return _MISSING
        items = []
        for i, item in enumerate(value):
            decoded = self.decode(item_tp, item, (*path, i))
            if decoded is not _MISSING:
                items.append(decoded)
        return tuple(items)

    def _map(self, key_tp: Any, value_tp: Any, value: Any, path: Path) -> Any:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type_name(value)}")
            return _MISSING
        out: dict[Any, Any] = {}
        for k, v in value.items():
            child = (*path, k if isinstance(k, str | int) else str(k))
            if key_tp is int:
                if isinstance(k, int) and not isinstance(k, bool):
                    key: Any = k
                elif isinstance(k, str) and k.isdigit():
                    key = int(k)
                else:
                    self.error(child, f'expected a port number as key, got "{k}"', key=True)
                    continue
            else:
                if not isinstance(k, str):
                    self.error(
                        child,
                        f"expected a string key, got {type_name(k)}",
                        f'quote it: "{k}"',
                        key=True,
                    )
                    continue
                key = k
            decoded = self.decode(value_tp, v, child)
            if decoded is not _MISSING:
                out[key] = decoded
        return FrozenMap(out)

    def dataclass(
        self, cls: type[T], value: Any, path: Path, extra: Mapping[str, Any] | None = None
    ) -> T | Any:
        """Decode a mapping into ``cls``; unknown, unmodelled and missing fields are reported.

        ``extra`` supplies constructor arguments that do not come from this mapping (a resource's
        metadata, decoded separately).
        """
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping, got {type_name(value)} {_short(value)}".rstrip())
            return _MISSING
        fields = _fields(typing.cast(Any, cls))
        unmodelled: frozenset[str] = getattr(cls, "UNMODELLED", frozenset())
        ignored: frozenset[str] = getattr(cls, "IGNORED", frozenset())
        hints = _hints(typing.cast(Any, cls))
        kwargs: dict[str, Any] = dict(extra or {})
        for key, item in value.items():
            child = (*path, key if isinstance(key, str | int) else str(key))
            if not isinstance(key, str):
                self.error(child, f"field names are strings, got {type_name(key)}", key=True)
                continue
            if key in unmodelled:
                self.report(
                    "MPY2001",
                    child,
                    f'field "{key}" is valid Istio but meshplay does not model it yet; '
                    "it is ignored",
                    "remove it, or expect no effect on any runner except kube",
                    key=True,
                )
                continue
            if key in ignored:
                self.report(
                    "MPY2002",
                    child,
                    f'field "{key}" has no effect on the mesh and is ignored',
                    key=True,
                )
                continue
            field = fields.get(key)
            if field is None:
                hint = did_you_mean(key, fields) or (
                    f"known fields: {', '.join(sorted(fields))}" if len(fields) <= 12 else ""
                )
                self.error(child, f'unknown field "{key}"', hint, key=True)
                continue
            decoded = self.decode(hints[field.name], item, child)
            if decoded is not _MISSING:
                kwargs[field.name] = decoded
        for key, field in fields.items():
            required = field.default is dataclasses.MISSING and (
                field.default_factory is dataclasses.MISSING
            )
            if required and field.name not in kwargs:
                if key in value:
                    return _MISSING  # already reported as invalid
                self.error(path, f'missing required field "{key}"')
                return _MISSING
        for group in getattr(cls, "ONEOF", ()):
            present = [k for k in group if k in value and value[k] not in (None, False, "")]
            if len(present) > 1:
                self.error(
                    (*path, present[1]),
                    f"only one of {', '.join(group)} may be set; found {', '.join(present)}",
                    key=True,
                )
        return cls(**kwargs)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def _freeze_json(value: Any) -> Any:
    """JSON values stay as parsed but lists become tuples and dicts FrozenMaps (hashable)."""
    if isinstance(value, list):
        return tuple(_freeze_json(v) for v in value)
    if isinstance(value, Mapping):
        return FrozenMap({str(k): _freeze_json(v) for k, v in value.items()})
    return value


MISSING = _MISSING
