"""Checks of a lesson's ``traffic:`` block against itself and the app (MPY4001, MPY4003).

HTTP and TCP traffic take different fields: a TCP connection carries bytes, not requests, and
only TCP traffic may go to a bare ``IP:port``; TLS from the client is only spoken to the ingress
gateway (``scheme: https``).
"""

from __future__ import annotations

from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.lesson.model import TRAFFIC_PROTOCOLS, TRAFFIC_SCHEMES, TrafficSpec
from mesh.lesson.positions import lesson_diagnostic as _at
from mesh.model.common import SourceMap

__all__ = ["check_traffic"]


def check_traffic(
    traffic: TrafficSpec,
    path: tuple[str | int, ...],
    source: SourceMap,
    lesson: str,
    *,
    services: set[str] | None,
    out: list[Diagnostic],
) -> None:
    """MPY4001 for traffic fields that contradict each other (``protocol: tcp`` with HTTP
    requests, TCP-only fields on HTTP traffic, an address target without ``protocol: tcp``),
    MPY4003 for a TCP target that is neither a Service of the app nor an ``IP:port``."""

    def report(key: str, message: str, hint: str = "", code: str = "MPY4001") -> None:
        out.append(_at(code, message, source, (*path, key), lesson, hint=hint))

    if traffic.protocol not in TRAFFIC_PROTOCOLS:
        report(
            "protocol",
            f'invalid protocol "{traffic.protocol}": expected one of {", ".join(TRAFFIC_PROTOCOLS)}',
            did_you_mean(traffic.protocol, list(TRAFFIC_PROTOCOLS)),
        )
        return
    if traffic.scheme not in TRAFFIC_SCHEMES:
        report(
            "scheme",
            f'invalid scheme "{traffic.scheme}": expected one of {", ".join(TRAFFIC_SCHEMES)}',
            did_you_mean(traffic.scheme, list(TRAFFIC_SCHEMES)),
        )
    elif traffic.scheme == "https" and (traffic.from_ != "ingress" or traffic.is_tcp):
        report(
            "scheme",
            "only HTTP traffic from ingress can speak TLS to the gateway (scheme: https)",
            "use from: ingress, or scheme: http",
        )
    for key in ("ca_certificate", "client_certificate"):
        if getattr(traffic, key) and traffic.scheme != "https":
            report(key, f"{key} is a TLS client setting", "add scheme: https")
    if traffic.sni and not traffic.is_tcp:
        report("sni", "sni names the server of a TLS connection the app opens itself",
               "add protocol: tcp, or use scheme: https from ingress")  # fmt: skip
    for key in ("send_bytes", "receive_bytes", "hold_s"):
        value = getattr(traffic, key)
        if value < 0:
            report(key, f"{key} must not be negative, got {value:g}")
        elif value and not traffic.is_tcp:
            report(key, f"{key} describes a TCP connection", "add protocol: tcp")
    if not traffic.is_tcp:
        if traffic.address is not None:
            report(
                "to",
                f'"{traffic.to}" is an address: only TCP traffic goes to an IP:port',
                "add protocol: tcp, or name a Service",
            )
        return
    if traffic.requests:
        report(
            "requests",
            "a TCP connection carries no HTTP requests",
            "remove requests (use send_bytes / receive_bytes), or use protocol: http",
        )
    if traffic.from_ == "ingress":
        report(
            "from",
            "the ingress gateway only has HTTP listeners: TCP traffic cannot enter through it",
            "send it from a workload or from outside",
        )
    if traffic.address is not None:
        if traffic.from_ == "outside":
            report(
                "to",
                f'a connection from outside to "{traffic.to}" never meets a sidecar',
                "send it from a workload (from: <Deployment>)",
            )
    elif services is not None and traffic.to not in services:
        report(
            "to",
            f'traffic target "{traffic.to}" is not a Service of the app nor an IP:port',
            did_you_mean(traffic.to, sorted(services)),
            code="MPY4003",
        )
