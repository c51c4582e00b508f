"""Envoy JSON scalar values as the compiled config needs them: durations, fractional percents,
header-value options and socket addresses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["fraction", "header_values", "listener_port", "parse_duration", "typed_config"]

_DENOMINATORS = {"HUNDRED": 100.0, "TEN_THOUSAND": 10_000.0, "MILLION": 1_000_000.0}


def parse_duration(value: Any, default: float = 0.0) -> float:
    """Envoy JSON duration (``"0.250s"``, ``"10s"``) or a number -> seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
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
    numerator = float(value.get("numerator", 0))
    return min(1.0, numerator / _DENOMINATORS.get(value.get("denominator", "HUNDRED"), 100.0))


def header_values(entries: Any) -> tuple[tuple[str, str, bool], ...]:
    """``*_headers_to_add`` as (lower-case name, value, append?): Istio's ``add`` is
    ``APPEND_IF_EXISTS_OR_ADD``, ``set`` is ``OVERWRITE_IF_EXISTS_OR_ADD``."""
    return tuple(
        (
            str(h["header"]["key"]).lower(),
            str(h["header"].get("value", "")),
            h.get("append_action", "APPEND_IF_EXISTS_OR_ADD") == "APPEND_IF_EXISTS_OR_ADD",
        )
        for h in entries or ()
    )


def listener_port(listener: Mapping[str, Any]) -> int | None:
    """The port of a listener's ``address.socket_address`` (None without one)."""
    sock = (listener.get("address") or {}).get("socket_address") or {}
    port = sock.get("port_value")
    return int(port) if port is not None else None


def typed_config(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A filter's (or transport socket's) ``typed_config`` ({} when it has none)."""
    config: Mapping[str, Any] = item.get("typed_config") or {}
    return config
