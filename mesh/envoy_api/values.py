"""Small Envoy value encoders shared by the builders: durations, percentages, string matchers.

Envoy's JSON form of ``google.protobuf.Duration`` is a decimal number of seconds with an ``s``
suffix (``"0.250s"``); percentages are ``FractionalPercent`` (numerator + denominator enum).
"""

from __future__ import annotations

from typing import Any

from mesh.model import Duration, Percent, StringMatch

__all__ = [
    "ADS",
    "MAX_UINT32",
    "duration",
    "fractional_percent",
    "percent_of",
    "socket_address",
    "string_matcher",
]

ADS: dict[str, Any] = {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"}
"""The config source istiod writes for RDS/EDS/SDS (bootstrap() rewrites it per runner)."""

MAX_UINT32 = 4294967295
"""What Istio writes for "no limit" in circuit breakers (2^32 - 1)."""


def duration(seconds: float | Duration) -> str:
    """``1.5`` -> ``"1.5s"``, ``0`` -> ``"0s"`` (Envoy's JSON duration, at most nanosecond digits)."""
    value = seconds.seconds if isinstance(seconds, Duration) else float(seconds)
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"


def fractional_percent(value: float) -> dict[str, Any]:
    """A percentage in [0, 100] as Istio encodes it: ``value * 10000`` of MILLION."""
    return {"numerator": round(value * 10000), "denominator": "MILLION"}


def percent_of(percentage: Percent | None, percent: int | None = None) -> dict[str, Any]:
    """Istio's fault percentage rule: ``percentage`` wins, then the deprecated integer ``percent``,
    and when neither is set the fault never fires (0 %, not Envoy's 100 % default)."""
    if percentage is not None:
        return fractional_percent(percentage.value)
    if percent is not None:
        return {"numerator": percent, "denominator": "HUNDRED"}
    return {"numerator": 0, "denominator": "MILLION"}


def string_matcher(match: StringMatch, *, ignore_case: bool = False) -> dict[str, Any]:
    """Istio StringMatch -> Envoy ``type.matcher.v3.StringMatcher`` (regex is RE2, full match)."""
    out: dict[str, Any]
    if match.exact is not None:
        out = {"exact": match.exact}
    elif match.prefix is not None:
        out = {"prefix": match.prefix}
    elif match.regex is not None:
        return {"safe_regex": {"regex": match.regex}}
    else:
        out = {"prefix": ""}
    if ignore_case:
        out["ignore_case"] = True
    return out


def socket_address(address: str, port: int) -> dict[str, Any]:
    """``{"socket_address": {"address": ..., "port_value": ...}}``."""
    return {"socket_address": {"address": address, "port_value": port}}
