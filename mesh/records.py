"""RequestRecord: one request (or TCP connection) at one proxy hop, the same fields in every runner.

Field names follow Envoy's access log (and Istio's standard metric labels), so the simulator emits
records directly and the real runners parse them from Envoy's JSON access log. A request that
crosses a client sidecar and a server sidecar yields two records with the same ``request_id``:
``reporter="source"`` (client side, outbound) and ``reporter="destination"`` (server side,
inbound), as Istio's ``reporter`` label distinguishes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar

__all__ = [
    "LOGGED_REQUEST_HEADERS",
    "RESPONSE_FLAGS",
    "ConnectionSecurityPolicy",
    "Reporter",
    "RequestRecord",
    "parse_response_flags",
    "sides_by_request_id",
]


class Reporter(StrEnum):
    """Which proxy reported the record (Istio's ``reporter`` label)."""

    SOURCE = "source"
    DESTINATION = "destination"


class ConnectionSecurityPolicy(StrEnum):
    """``connection_security_policy`` label: whether the hop was mutual TLS."""

    MUTUAL_TLS = "mutual_tls"
    NONE = "none"
    UNKNOWN = "unknown"


RESPONSE_FLAGS: Mapping[str, str] = {
    "DC": "DownstreamConnectionTermination",
    "DI": "DelayInjected",
    "DPE": "DownstreamProtocolError",
    "FI": "FaultInjected",
    "IH": "InvalidEnvoyRequestHeaders",
    "LH": "FailedLocalHealthCheck",
    "LR": "LocalReset",
    "NC": "NoClusterFound",
    "NFCF": "NoFilterConfigFound",
    "NR": "NoRouteFound",
    "OM": "OverloadManagerTerminated",
    "RL": "RateLimited",
    "RLSE": "RateLimitServiceError",
    "SI": "StreamIdleTimeout",
    "UAEX": "UnauthorizedExternalService",
    "UC": "UpstreamConnectionTermination",
    "UF": "UpstreamConnectionFailure",
    "UH": "NoHealthyUpstream",
    "UMSDR": "UpstreamMaxStreamDurationReached",
    "UO": "UpstreamOverflow",
    "UPE": "UpstreamProtocolError",
    "UR": "UpstreamRemoteReset",
    "URX": "UpstreamRetryLimitExceeded",
    "UT": "UpstreamRequestTimeout",
    "DF": "DnsResolutionFailure",
    "DO": "DropOverload",
}
"""Envoy's short response flags and their long names (``%RESPONSE_FLAGS_LONG%``)."""


LOGGED_REQUEST_HEADERS: tuple[str, ...] = ("end-user", "user-agent")
"""Request headers every proxy's access log carries (lower-case names), so that expectations
can select requests by them (``header: {end-user: jason}``, ``user: jason``). On a cluster this
is a Telemetry/meshConfig access-log format with ``%REQ(END-USER)%``: Istio's default format
logs only ``user-agent`` of these. ``end-user`` is the user header of Istio's samples (Bookinfo's
productpage sets it from the login session)."""


def parse_response_flags(text: str | None) -> tuple[str, ...]:
    """``"UO,URX"`` or ``"-"`` (Envoy's empty value) -> ``("UO", "URX")`` / ``()``."""
    if not text or text == "-":
        return ()
    return tuple(flag for flag in text.split(",") if flag)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One request as one proxy saw it. Times are seconds since the run started.

    ``destination_service`` is the FQDN (Istio's ``destination_service`` label); a client outside
    the mesh has ``source_workload`` ``"unknown"``, as in Istio's metrics.
    """

    UNKNOWN: ClassVar[str] = "unknown"

    start_time: float
    duration_ms: float
    reporter: Reporter
    source_workload: str
    source_namespace: str
    source_principal: str
    destination_service: str
    destination_workload: str
    destination_namespace: str
    destination_version: str
    source_app: str = ""
    source_version: str = ""
    destination_app: str = ""
    destination_principal: str = ""
    route_name: str = ""
    upstream_cluster: str = ""
    upstream_host: str = ""
    method: str = "GET"
    path: str = "/"
    authority: str = ""
    response_code: int = 0
    response_flags: tuple[str, ...] = ()
    attempts: int = 1
    bytes_received: int = 0
    bytes_sent: int = 0
    request_id: str = ""
    trace_id: str = ""
    connection_security_policy: ConnectionSecurityPolicy = ConnectionSecurityPolicy.UNKNOWN
    response_code_details: str = ""
    request_protocol: str = "http"
    """Istio's ``request_protocol`` label: ``http`` (or ``grpc``), or ``tcp`` for a record of one
    TCP connection (then ``method``/``path`` are empty, ``response_code`` is 0, the bytes are
    the connection's and ``duration_ms`` is its lifetime)."""

    request_headers: tuple[tuple[str, str], ...] = ()
    """The request's values of :data:`LOGGED_REQUEST_HEADERS` it carried (name, value), sorted."""
    source_cluster: str = ""
    destination_cluster: str = ""
    """Istio's ``source_cluster`` / ``destination_cluster`` labels: the cluster of the client's
    and of the server's pod in a multi-cluster mesh (docs/multicluster.md); "" when the runner
    does not tell (a single cluster; the sim)."""

    @property
    def ok(self) -> bool:
        """The caller got an answer it can use: a 2xx or 3xx status. 4xx count as failures here,
        at the edge where they happen: a 404 ``NR`` (no route), a 403 from RBAC or a 429 ``RL``
        are Envoy's local replies, not answers from the app (Istio's dashboards count only 5xx;
        :attr:`server_ok` is that reading). A TCP connection has no status: it succeeded when
        Envoy set no response flag."""
        if self.request_protocol == "tcp":
            return not self.response_flags
        return 200 <= self.response_code < 400

    @property
    def server_ok(self) -> bool:
        """Non-5xx: success as Istio's dashboards count it, and as Envoy's tracer does (it tags a
        span ``error=true`` on 5xx or no response at all)."""
        if self.request_protocol == "tcp":
            return not self.response_flags
        return 0 < self.response_code < 500

    def header(self, name: str) -> str:
        """The logged request header ``name`` (lower case), "" when absent."""
        return next((v for k, v in self.request_headers if k == name), "")

    @property
    def is_tcp(self) -> bool:
        """A record of one TCP connection (``request_protocol="tcp"``)."""
        return self.request_protocol == "tcp"

    @property
    def destination_service_name(self) -> str:
        """Short service name (Istio's ``destination_service_name`` label)."""
        return self.destination_service.split(".", 1)[0]

    @property
    def flags_text(self) -> str:
        """Response flags as Envoy prints them (``-`` when none)."""
        return ",".join(self.response_flags) or "-"

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (``--records out.jsonl``)."""
        data = asdict(self)
        data["reporter"] = self.reporter.value
        data["connection_security_policy"] = self.connection_security_policy.value
        data["response_flags"] = list(self.response_flags)
        data["request_headers"] = dict(self.request_headers)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        """Inverse of :meth:`to_json` (unknown keys are ignored)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["reporter"] = Reporter(values["reporter"])
        values["connection_security_policy"] = ConnectionSecurityPolicy(
            values.get("connection_security_policy", "unknown")
        )
        values["response_flags"] = tuple(values.get("response_flags", ()))
        values["request_headers"] = tuple(sorted(dict(values.get("request_headers") or {}).items()))
        return cls(**values)


def sides_by_request_id(
    records: Iterable[RequestRecord],
) -> tuple[dict[str, RequestRecord], dict[str, RequestRecord]]:
    """The server-side and the client-side record of each ``x-request-id`` (the last one when
    retries tried several): what Istio's peer metadata exchange lets each sidecar know of the
    other side of the same request. Records without a request id are left out."""
    served: dict[str, RequestRecord] = {}
    sent: dict[str, RequestRecord] = {}
    for r in records:
        if r.request_id:
            (served if r.reporter is Reporter.DESTINATION else sent)[r.request_id] = r
    return served, sent
