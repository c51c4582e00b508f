"""Envoy JSON scalar values as the compiled config needs them: durations, fractional percents,
header-value options and socket addresses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "APPEND_ACTIONS",
    "DENOMINATOR_NAMES",
    "HeaderOp",
    "fraction",
    "fraction_parts",
    "header_values",
    "listener_port",
    "parse_duration",
    "typed_config",
]

_DENOMINATORS = {"HUNDRED": 100.0, "TEN_THOUSAND": 10_000.0, "MILLION": 1_000_000.0}
DENOMINATOR_NAMES = ("HUNDRED", "TEN_THOUSAND", "MILLION")
"""``type.v3.FractionalPercent.DenominatorType`` by number."""


def parse_duration(value: Any, default: float = 0.0) -> float:
    """Envoy JSON duration (``"0.250s"``, ``"10s"``, ``{seconds: 1, nanos: 5e8}``) or a number
    -> seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return float(value.get("seconds", 0) or 0) + float(value.get("nanos", 0) or 0) / 1e9
    text = str(value).strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000.0
    return float(text.rstrip("s") or 0.0)


def fraction(value: Any, default: float = 1.0) -> float:
    """FractionalPercent (``{numerator, denominator}``) or ``runtime_fraction`` -> [0, 1]."""
    if value is None:
        return default
    if "default_value" in value:
        value = value["default_value"]
    numerator, denominator = fraction_parts(value)
    return min(1.0, numerator / denominator)


def fraction_parts(value: Mapping[str, Any]) -> tuple[int, int]:
    """A FractionalPercent -> (numerator, denominator as a number); the denominator may be given
    by name or by enum number, as protobuf JSON allows."""
    denominator = value.get("denominator", "HUNDRED")
    if isinstance(denominator, int) or (isinstance(denominator, str) and denominator.isdigit()):
        denominator = DENOMINATOR_NAMES[min(int(denominator), 2)]
    return int(value.get("numerator", 0) or 0), int(_DENOMINATORS.get(str(denominator), 100.0))


HeaderOp = tuple[str, str, str, bool]
"""One ``HeaderValueOption``: (lower-case name, value, append action, keep_empty_value)."""

APPEND_ACTIONS = (
    "APPEND_IF_EXISTS_OR_ADD",
    "ADD_IF_ABSENT",
    "OVERWRITE_IF_EXISTS_OR_ADD",
    "OVERWRITE_IF_EXISTS",
)
"""``HeaderValueOption.HeaderAppendAction`` by number."""


def header_values(entries: Any) -> tuple[HeaderOp, ...]:
    """``*_headers_to_add`` as :data:`HeaderOp` values. ``append_action`` by name or number;
    the deprecated ``append: false`` means ``OVERWRITE_IF_EXISTS_OR_ADD``. Istio's ``add`` is
    ``APPEND_IF_EXISTS_OR_ADD``, its ``set`` ``OVERWRITE_IF_EXISTS_OR_ADD``."""
    out: list[HeaderOp] = []
    for h in entries or ():
        action = h.get("append_action")
        if action is None:
            append = h.get("append", True)
            if isinstance(append, Mapping):
                append = append.get("value", True)
            action = "APPEND_IF_EXISTS_OR_ADD" if append is not False else APPEND_ACTIONS[2]
        elif isinstance(action, int) or str(action).isdigit():
            action = APPEND_ACTIONS[min(int(action), 3)]
        header = h.get("header") or {}
        value = header.get("value", header.get("raw_value", ""))
        out.append(
            (
                str(header.get("key", "")).lower(),
                str(value),
                str(action),
                bool(h.get("keep_empty_value", False)),
            )
        )
    return tuple(out)


def listener_port(listener: Mapping[str, Any]) -> int | None:
    """The port of a listener's ``address.socket_address`` (None without one)."""
    sock = (listener.get("address") or {}).get("socket_address") or {}
    port = sock.get("port_value")
    return int(port) if port is not None else None


def typed_config(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A filter's (or transport socket's) ``typed_config`` ({} when it has none)."""
    config: Mapping[str, Any] = item.get("typed_config") or {}
    return config
