"""Envoy's protobuf-JSON (and YAML) forms, reduced to one canonical dict shape.

Envoy parses a config with protobuf's JSON mapping, so one field can be spelled several ways:
``prefix_rewrite`` or ``prefixRewrite``; a ``google.protobuf.Duration`` as ``"1.5s"`` or
``{seconds: 1, nanos: 500000000}``; a wrapper (``UInt32Value``, ``BoolValue``) as ``3`` or
``{value: 3}``; an enum by name (``FOUND``) or number (``1``, or ``"1"``). :func:`canonical`
rewrites the keys to the proto field names (snake_case) everywhere except inside map fields whose
keys are data (``typed_per_filter_config``, ``filter_metadata``...) and ``Struct`` values; the
readers below accept every value form.

:class:`Issue` is what route loading reports about a config: a field meshplay does not model
(``MPY2101``) or one Envoy itself would reject (``MPY1101``), with the field's path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INVALID",
    "NOT_MODELLED",
    "Issue",
    "canonical",
    "enum_name",
    "has_camel_case",
    "unwrap",
    "wrapped_bool",
    "wrapped_int",
]

NOT_MODELLED = "MPY2101"
INVALID = "MPY1101"

_DATA_KEYED = frozenset(
    {"typed_per_filter_config", "filter_metadata", "typed_filter_metadata", "per_filter_config"}
)
"""Map fields: their keys are names chosen by the user (filter names, metadata namespaces)."""
_OPAQUE = frozenset({"filter_metadata", "typed_filter_metadata"})
"""Fields whose values are ``Struct``s (free-form JSON): nothing inside them is a field name."""
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


@dataclass(frozen=True, slots=True)
class Issue:
    """Something about a route configuration: where (a path of keys and indexes), which code,
    what (``MPY2101`` not modelled, ``MPY1101`` Envoy rejects the config)."""

    path: tuple[str | int, ...]
    code: str
    message: str


@functools.lru_cache(maxsize=4096)
def _snake(key: str) -> str:
    return _CAMEL.sub(r"_\1", key).lower() if not key.startswith("@") else key


_SCALARS = (str, int, float, bool, type(None))
_UPPER_KEY = re.compile(r'"[^"\\]*[A-Z][^"\\]*"\s*:')


def has_camel_case(value: Any) -> bool:
    """Whether some key of ``value`` has an upper-case letter (a camelCase field name, or user
    data such as metadata keys): checked on the JSON text, which is much faster than a walk."""
    return _UPPER_KEY.search(json.dumps(value, default=str)) is not None


def canonical(value: Any, _opaque: bool = False) -> Any:
    """A copy of a protobuf-JSON value with every field name in its proto (snake_case) form."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [canonical(v, _opaque) for v in value]
    if kind is dict or isinstance(value, Mapping):
        if _opaque:
            return {k: canonical(v, True) for k, v in value.items()}
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _snake(str(key))
            if name in _DATA_KEYED and isinstance(item, Mapping):
                out[name] = {str(k): canonical(v, name in _OPAQUE) for k, v in item.items()}
            else:
                out[name] = canonical(item)
        return out
    return value


def unwrap(value: Any) -> Any:
    """A wrapper type's value: ``{value: 3}`` -> ``3``; anything else as it is."""
    if isinstance(value, Mapping) and set(value) <= {"value"}:
        return value.get("value")
    return value


def wrapped_int(value: Any, default: int) -> int:
    """A ``UInt32Value``/``uint32`` (``3``, ``"3"``, ``{value: 3}``), or ``default`` if unset."""
    value = unwrap(value)
    return default if value is None else int(value)


def wrapped_bool(value: Any, default: bool) -> bool:
    """A ``BoolValue``/``bool`` (``true``, ``{value: true}``), or ``default`` if unset."""
    value = unwrap(value)
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def enum_name(value: Any, names: Sequence[str], default: str) -> str:
    """An enum given by name or by number (``2``, ``"2"``) -> its name (``default`` if unset)."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an enum value")
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        index = int(value)
        if 0 <= index < len(names):
            return names[index]
        raise ValueError(f"enum number {index} is out of range (0..{len(names) - 1})")
    text = str(value)
    if text not in names:
        raise ValueError(f"unknown enum value {text!r} (one of {', '.join(names)})")
    return text
