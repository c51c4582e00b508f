"""The JSON access log every listener writes, and its tested inverse.

One line per request per proxy hop carries every :class:`~mesh.records.RequestRecord` field.
What Envoy's command operators cannot know is written as literal strings into each proxy's own
format, because each proxy's config is generated for one pod: the reporter (``source`` on
outbound and gateway listeners, ``destination`` on inbound ones), the pod's own workload,
namespace, app and version. The caller's identity on the inbound side comes from the
``x-meshplay-source-*`` request headers the client sidecar adds (Istio exchanges the same facts
through its ``x-envoy-peer-metadata`` headers) and, with mTLS, from the peer certificate. The
serving workload on the outbound side comes from the chosen endpoint's ``istio.workload``
metadata (``name;namespace;app;version;cluster``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    BLOCK_ALL_VHOST,
    parse_cluster_name,
    parse_sni_name,
)
from mesh.records import (
    LOGGED_REQUEST_HEADERS,
    ConnectionSecurityPolicy,
    Reporter,
    RequestRecord,
    parse_response_flags,
)

__all__ = [
    "HOST_FALLBACK_KEY",
    "SOURCE_APP_HEADER",
    "SOURCE_NAMESPACE_HEADER",
    "SOURCE_VERSION_HEADER",
    "SOURCE_WORKLOAD_HEADER",
    "LogIdentity",
    "access_log",
    "json_format",
    "record_from_access_log",
    "tcp_json_format",
]

SOURCE_WORKLOAD_HEADER = "x-meshplay-source-workload"
SOURCE_NAMESPACE_HEADER = "x-meshplay-source-namespace"
SOURCE_APP_HEADER = "x-meshplay-source-app"
SOURCE_VERSION_HEADER = "x-meshplay-source-version"

_HEADER_KEY = "request_header."
"""Prefix of the log keys holding :data:`~mesh.records.LOGGED_REQUEST_HEADERS`."""

_COMMON: dict[str, str] = {
    "start_time": "%START_TIME%",
    "duration_ms": "%DURATION%",
    "duration_us": "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%",
    "route_name": "%ROUTE_NAME%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_host": "%UPSTREAM_HOST%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "trace_id": "%REQ(X-B3-TRACEID)%",
    "traceparent": "%REQ(TRACEPARENT)%",
    **{f"{_HEADER_KEY}{name}": f"%REQ({name.upper()})%" for name in LOGGED_REQUEST_HEADERS},
}


_TCP_COMMON: dict[str, str] = {
    "start_time": "%START_TIME%",
    "duration_ms": "%DURATION%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_host": "%UPSTREAM_HOST%",
    "response_flags": "%RESPONSE_FLAGS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "request_protocol": "tcp",
}
"""What a ``tcp_proxy`` log line can know about one connection: no request, so no method, path,
authority, status, attempts or trace; ``duration_ms`` is the connection's lifetime."""


class LogIdentity:
    """The literal facts about the proxy's own pod that go into its log format."""

    __slots__ = ("app", "namespace", "principal", "version", "workload")

    def __init__(
        self, workload: str, namespace: str, app: str, version: str, principal: str
    ) -> None:
        self.workload = workload
        self.namespace = namespace
        self.app = app
        self.version = version
        self.principal = principal


HOST_FALLBACK_KEY = "destination_service_fallback"
"""Literal ``host`` in a sidecar's outbound format: where no cluster names the destination
service (404 ``NR``, a direct response, a redirect), Istio's stats on a sidecar's outbound side
report the ``Host`` header as sent (port included) as ``destination_service``. istiod sets
``disable_host_header_fallback`` on gateways and inbound listeners, whose formats lack the key:
there the service is ``unknown``."""


def json_format(
    reporter: Reporter,
    me: LogIdentity,
    destination_service: str = "",
    *,
    host_fallback: bool = False,
) -> dict[str, str]:
    """The ``json_format`` for one listener of one proxy (``host_fallback``: a sidecar's
    outbound listener, see :data:`HOST_FALLBACK_KEY`)."""
    fmt = dict(_COMMON)
    fmt["reporter"] = reporter.value
    if reporter is Reporter.SOURCE:
        if host_fallback:
            fmt[HOST_FALLBACK_KEY] = "host"
        fmt.update(
            source_workload=me.workload,
            source_namespace=me.namespace,
            source_app=me.app,
            source_version=me.version,
            source_principal=me.principal,
            destination_workload="%UPSTREAM_METADATA(istio:workload)%",
            destination_principal="%UPSTREAM_PEER_URI_SAN%",
            connection_security_policy="unknown",
        )
    else:
        fmt.update(
            source_workload=f"%REQ({SOURCE_WORKLOAD_HEADER.upper()})%",
            source_namespace=f"%REQ({SOURCE_NAMESPACE_HEADER.upper()})%",
            source_app=f"%REQ({SOURCE_APP_HEADER.upper()})%",
            source_version=f"%REQ({SOURCE_VERSION_HEADER.upper()})%",
            source_principal="%DOWNSTREAM_PEER_URI_SAN%",
            destination_workload=f"{me.workload};{me.namespace};{me.app};{me.version};Kubernetes",
            destination_principal="%DOWNSTREAM_LOCAL_URI_SAN%",
            destination_service=destination_service,
            connection_security_policy="%DOWNSTREAM_TLS_VERSION%",
        )
    return dict(sorted(fmt.items()))


def tcp_json_format(
    reporter: Reporter, me: LogIdentity, destination_service: str = ""
) -> dict[str, str]:
    """The ``json_format`` of a ``tcp_proxy`` on one proxy (one line per connection).

    The client side knows itself and the upstream host's ``istio.workload`` metadata; the server
    side knows itself and, over mTLS, the peer certificate (there are no request headers to carry
    the caller's workload, so it stays unknown, as without Istio's TCP metadata exchange)."""
    fmt = dict(_TCP_COMMON)
    fmt["reporter"] = reporter.value
    if reporter is Reporter.SOURCE:
        fmt.update(
            source_workload=me.workload,
            source_namespace=me.namespace,
            source_app=me.app,
            source_version=me.version,
            source_principal=me.principal,
            destination_workload="%UPSTREAM_METADATA(istio:workload)%",
            destination_principal="%UPSTREAM_PEER_URI_SAN%",
            connection_security_policy="unknown",
        )
    else:
        fmt.update(
            source_principal="%DOWNSTREAM_PEER_URI_SAN%",
            destination_workload=f"{me.workload};{me.namespace};{me.app};{me.version};Kubernetes",
            destination_principal="%DOWNSTREAM_LOCAL_URI_SAN%",
            destination_service=destination_service,
            connection_security_policy="%DOWNSTREAM_TLS_VERSION%",
        )
    return dict(sorted(fmt.items()))


def access_log(path: str, fmt: Mapping[str, str]) -> list[dict[str, Any]]:
    """The HCM ``access_log`` list: one file logger with the JSON format."""
    return [
        {
            "name": tu.ACCESS_LOGGER_FILE,
            "typed_config": tu.typed(
                tu.ACCESS_LOG_FILE, path=path, log_format={"json_format": dict(fmt)}
            ),
        }
    ]


def _text(value: Any) -> str:
    if value is None or value == "-":
        return ""
    return str(value)


def _number(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _duration_ms(entry: Mapping[str, Any]) -> float:
    """``duration_us`` (first byte in to last byte out, in microseconds) when Envoy has both
    ends; else ``%DURATION%``, whole milliseconds (e.g. the client went away mid-response)."""
    micros = entry.get("duration_us")
    if isinstance(micros, int | float) and not isinstance(micros, bool):
        return float(micros) / 1000.0
    return float(_number(entry.get("duration_ms")))


def _epoch(text: str) -> float:
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _start_epoch(entry: Mapping[str, Any]) -> float:
    """When the request's first byte came in, epoch seconds: ``start_us`` (``%START_TIME(%s.%6f)%``,
    microseconds, which the local runner adds) when the line has it, else ``%START_TIME%``, which
    Envoy writes with whole milliseconds."""
    micros = _text(entry.get("start_us"))
    if micros:
        try:
            return float(micros)
        except ValueError:
            pass
    return _epoch(_text(entry.get("start_time")))


def _trace_id(entry: Mapping[str, Any]) -> str:
    b3 = _text(entry.get("trace_id"))
    if b3:
        return b3
    parent = _text(entry.get("traceparent"))
    parts = parent.split("-")
    return parts[1] if len(parts) >= 3 else ""


def record_from_access_log(
    entry: Mapping[str, Any], *, run_started_at: float = 0.0
) -> RequestRecord:
    """One parsed JSON access-log line -> RequestRecord (start time relative to the run).

    Envoy writes ``null`` (or ``-``) for values it does not have; they become ``""`` / 0. A
    ``tcp_proxy`` line (``request_protocol: tcp``) has no method, path or status: they stay empty
    and 0, and its ``connection_termination_details`` become the record's details.
    """
    protocol = _text(entry.get("request_protocol")) or "http"
    tcp = protocol == "tcp"
    reporter = Reporter(_text(entry.get("reporter")) or Reporter.SOURCE.value)
    workload = _text(entry.get("destination_workload")).split(";")
    dest_workload, dest_ns, dest_app, dest_version = [*workload, "", "", "", ""][:4]
    cluster = _text(entry.get("upstream_cluster"))
    # an east-west gateway's SNI-DNAT cluster (outbound_.PORT_.SUBSET_.HOST) is one service's,
    # whose host istiod writes in the cluster's istio metadata, where Istio's stats read it
    parsed = parse_cluster_name(cluster) or parse_sni_name(cluster)
    service = _text(entry.get("destination_service"))
    if not service and parsed is not None and parsed.host:
        service = parsed.host
    if not service and cluster:
        service = cluster
    if not service and _text(entry.get("route_name")) == BLOCK_ALL_VHOST:
        service = BLACKHOLE_CLUSTER  # REGISTRY_ONLY's catch-all route: Istio labels it BlackHole
    if not service and _text(entry.get(HOST_FALLBACK_KEY)) == "host":
        service = _text(entry.get("authority"))  # no cluster: a sidecar's stats use the Host
    if reporter is Reporter.SOURCE:
        security = ConnectionSecurityPolicy.UNKNOWN
    else:
        tls = _text(entry.get("connection_security_policy"))
        mtls = tls and _text(entry.get("source_principal"))
        security = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
    unknown = RequestRecord.UNKNOWN
    source_principal = _text(entry.get("source_principal")).removeprefix("spiffe://")
    dest_principal = _text(entry.get("destination_principal")).removeprefix("spiffe://")
    return RequestRecord(
        start_time=_start_epoch(entry) - run_started_at,
        duration_ms=_duration_ms(entry),
        reporter=reporter,
        source_workload=_text(entry.get("source_workload")) or unknown,
        source_namespace=_text(entry.get("source_namespace")) or unknown,
        source_principal=source_principal or unknown,
        source_app=_text(entry.get("source_app")) or unknown,
        source_version=_text(entry.get("source_version")) or unknown,
        destination_service=service or unknown,
        destination_workload=dest_workload or unknown,
        destination_namespace=dest_ns or unknown,
        destination_app=dest_app or unknown,
        destination_version=dest_version or unknown,
        destination_principal=dest_principal or unknown,
        route_name=_text(entry.get("route_name")),
        upstream_cluster=cluster,
        upstream_host=_text(entry.get("upstream_host")),
        method=_text(entry.get("method")) or ("" if tcp else "GET"),
        path=_text(entry.get("path")) or ("" if tcp else "/"),
        authority=_text(entry.get("authority")),
        response_code=_number(entry.get("response_code")),
        response_flags=parse_response_flags(_text(entry.get("response_flags"))),
        attempts=_number(entry["attempts"]) if entry.get("attempts") is not None else 1,
        bytes_received=_number(entry.get("bytes_received")),
        bytes_sent=_number(entry.get("bytes_sent")),
        request_id=_text(entry.get("request_id")),
        trace_id=_trace_id(entry),
        connection_security_policy=security,
        response_code_details=_text(entry.get("response_code_details"))
        or _text(entry.get("connection_termination_details")),
        request_protocol=protocol,
        request_headers=tuple(
            (name, value)
            for name in LOGGED_REQUEST_HEADERS
            if (value := _text(entry.get(f"{_HEADER_KEY}{name}")))
        ),
    )
