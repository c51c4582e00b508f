"""Istio's standard metrics, counted per reporting proxy as Istio's stats filter counts them.

A real Istio sidecar runs the ``istio.stats`` filter: once per request (at the access-log hook,
so local replies such as ``FI`` or ``UO`` count too) it adds one to ``istio_requests_total`` and
one sample to each of ``istio_request_duration_milliseconds``, ``istio_request_bytes`` and
``istio_response_bytes``; once per TCP connection it counts ``istio_tcp_connections_opened_total``
/ ``..._closed_total`` and the bytes in ``istio_tcp_sent_bytes_total`` /
``istio_tcp_received_bytes_total``. Every series carries the same labels: who reported
(``reporter``: ``source`` on the client sidecar or gateway, ``destination`` on the server
sidecar), both workloads with their canonical service and revision, principals, the
destination service, protocol, response code and flags, and (server side only) whether the
connection was mutual TLS.

Upstream Envoy has no such filter, so meshplay counts the same things from the records every
runner produces (on ``local`` from each proxy's JSON access log). :class:`ProxyMetrics` is one
proxy's counters; :meth:`ProxyMetrics.exposition` renders them in the Prometheus text format a
scrape reads. Differences from a real Istio proxy are listed in ``docs/observability.md``.
"""

from __future__ import annotations

import bisect
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, field

from mesh.metrics import DURATION_BUCKETS_MS
from mesh.records import RequestRecord

__all__ = [
    "BYTES_BUCKETS",
    "FAMILIES",
    "ISTIO_LABELS",
    "Family",
    "Labels",
    "ProxyMetrics",
    "istio_labels",
    "render_labels",
]

Labels = tuple[tuple[str, str], ...]
"""A series' labels in a fixed order (Istio's)."""

BYTES_BUCKETS: tuple[float, ...] = DURATION_BUCKETS_MS
"""Envoy's default histogram buckets serve the byte histograms too (Istio sets no others)."""

DEFAULT_CLUSTER = "Kubernetes"
"""Istio's default cluster id (``source_cluster`` / ``destination_cluster``)."""

ISTIO_LABELS: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
"""The labels of every Istio standard metric, in the order the stats filter emits them."""


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family: its name (the ``# TYPE`` name), type and help text."""

    name: str
    type: str
    help: str


FAMILIES: tuple[Family, ...] = (
    Family("istio_requests_total", "counter", "Requests processed by the reporting proxy."),
    Family(
        "istio_request_duration_milliseconds",
        "histogram",
        "Request duration, first byte in to last byte out.",
    ),
    Family("istio_request_bytes", "histogram", "Request body sizes."),
    Family("istio_response_bytes", "histogram", "Response body sizes."),
    Family("istio_tcp_connections_opened_total", "counter", "TCP connections opened."),
    Family("istio_tcp_connections_closed_total", "counter", "TCP connections closed."),
    Family("istio_tcp_sent_bytes_total", "counter", "Bytes sent to the client over TCP."),
    Family("istio_tcp_received_bytes_total", "counter", "Bytes received from the client over TCP."),
)
"""Every family :class:`ProxyMetrics` renders, in rendering order."""

_UNKNOWN = RequestRecord.UNKNOWN


def _or_unknown(value: str) -> str:
    return value if value and value != "-" else _UNKNOWN


def _principal(value: str) -> str:
    if not value or value == _UNKNOWN:
        return _UNKNOWN
    return value if value.startswith("spiffe://") else f"spiffe://{value}"


def _revision(version: str) -> str:
    return version if version and version not in ("-", _UNKNOWN) else "latest"


def _service_namespace(r: RequestRecord) -> str:
    parts = r.destination_service.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[1]
    return _or_unknown(r.destination_namespace)


def istio_labels(r: RequestRecord) -> Labels:
    """The labels Istio's stats filter puts on this record's series.

    Unknown peers are ``unknown``, an unknown canonical revision is ``latest`` (Istio's
    defaults); the canonical service is the ``app`` label and the canonical revision the
    ``version`` label, as the sidecar injector derives them; principals are full SPIFFE URIs.
    """
    source_known = r.source_workload not in ("", _UNKNOWN)
    dest_known = r.destination_workload not in ("", _UNKNOWN)
    source_app = _or_unknown(r.source_app)
    dest_app = _or_unknown(r.destination_app)
    return (
        ("reporter", r.reporter.value),
        ("source_workload", _or_unknown(r.source_workload)),
        ("source_canonical_service", source_app if source_known else _UNKNOWN),
        ("source_canonical_revision", _revision(r.source_version) if source_known else "latest"),
        ("source_workload_namespace", _or_unknown(r.source_namespace)),
        ("source_principal", _principal(r.source_principal)),
        ("source_app", source_app),
        ("source_version", _or_unknown(r.source_version)),
        ("source_cluster", DEFAULT_CLUSTER if source_known else _UNKNOWN),
        ("destination_workload", _or_unknown(r.destination_workload)),
        ("destination_workload_namespace", _or_unknown(r.destination_namespace)),
        ("destination_principal", _principal(r.destination_principal)),
        ("destination_app", dest_app),
        ("destination_version", _or_unknown(r.destination_version)),
        ("destination_service", _or_unknown(r.destination_service)),
        ("destination_canonical_service", dest_app if dest_known else _UNKNOWN),
        (
            "destination_canonical_revision",
            _revision(r.destination_version) if dest_known else "latest",
        ),
        ("destination_service_name", _or_unknown(r.destination_service_name)),
        ("destination_service_namespace", _service_namespace(r)),
        ("destination_cluster", DEFAULT_CLUSTER if dest_known else _UNKNOWN),
        ("request_protocol", r.request_protocol),
        ("response_code", str(r.response_code)),
        ("grpc_response_status", ""),
        ("response_flags", r.flags_text),
        ("connection_security_policy", r.connection_security_policy.value),
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_labels(labels: Iterable[tuple[str, str]]) -> str:
    """``a="1",b="2"`` (values escaped as the exposition format requires)."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels)


def _le(bound: float) -> str:
    return f"{bound:g}"


@dataclass(slots=True)
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str, zero: bool) -> Iterator[tuple[str, float]]:
        cumulative = 0
        counts = self.counts or [0] * (len(self.bounds) + 1)
        for bound, n in zip((*self.bounds, None), counts, strict=True):
            cumulative += n
            le = "+Inf" if bound is None else _le(bound)
            yield f'{name}_bucket{{{labels},le="{le}"}}', 0 if zero else cumulative
        yield f"{name}_sum{{{labels}}}", 0 if zero else self.total
        yield f"{name}_count{{{labels}}}", 0 if zero else self.count


@dataclass(slots=True)
class _HttpSeries:
    requests: int = 0
    duration: _Histogram = field(default_factory=lambda: _Histogram(DURATION_BUCKETS_MS))
    request_bytes: _Histogram = field(default_factory=lambda: _Histogram(BYTES_BUCKETS))
    response_bytes: _Histogram = field(default_factory=lambda: _Histogram(BYTES_BUCKETS))


@dataclass(slots=True)
class _TcpSeries:
    opened: int = 0
    closed: int = 0
    sent: int = 0
    received: int = 0


class ProxyMetrics:
    """Istio's metrics as one proxy counts them (or several proxies merged, when their series
    should add up: the simulator reports per workload, not per replica).

    ``extra`` labels (target labels such as ``pod``) are appended to every series when
    rendering; they are not part of the series key.
    """

    def __init__(self) -> None:
        self.http: dict[Labels, _HttpSeries] = {}
        self.tcp: dict[Labels, _TcpSeries] = {}
        self._texts: dict[tuple[Labels, Labels], str] = {}

    def _text(self, key: Labels, extra: Labels) -> str:
        """The rendered labels of a series (rendered once: a scrape asks every second)."""
        text = self._texts.get((key, extra))
        if text is None:
            text = self._texts[(key, extra)] = render_labels((*key, *extra))
        return text

    def __len__(self) -> int:
        return len(self.http) + len(self.tcp)

    def add(self, record: RequestRecord) -> Labels:
        """Count one record (a request or a TCP connection); returns its series key."""
        key = istio_labels(record)
        self.count(key, record.is_tcp, record.duration_ms, record.bytes_received, record.bytes_sent)
        return key

    def count(
        self, key: Labels, tcp: bool, duration_ms: float, bytes_received: int, bytes_sent: int
    ) -> None:
        """Count one request (or TCP connection) of the series ``key`` (from
        :func:`istio_labels`): the fast path when the labels are known already."""
        if tcp:
            conn = self.tcp.get(key)
            if conn is None:
                conn = self.tcp[key] = _TcpSeries()
            conn.opened += 1
            conn.closed += 1
            conn.sent += bytes_sent
            conn.received += bytes_received
            return
        series = self.http.get(key)
        if series is None:
            series = self.http[key] = _HttpSeries()
        series.requests += 1
        series.duration.observe(duration_ms)
        series.request_bytes.observe(float(bytes_received))
        series.response_bytes.observe(float(bytes_sent))

    def keys(self) -> set[Labels]:
        """Every series key counted so far."""
        return set(self.http) | set(self.tcp)

    def samples(
        self,
        extra: Labels = (),
        zero: Container[Labels] = (),
        only: Container[str] | None = None,
    ) -> Iterator[tuple[Family, str, float]]:
        """(family, ``name{labels}``, value) of every sample, family by family (of the families
        named in ``only`` when given); a series in ``zero`` is shown with all values 0 (see
        ``cluster.local.exporter``)."""
        http = sorted(self.http.items())
        tcp = sorted(self.tcp.items())
        requests, duration, req_bytes, resp_bytes, *tcp_families = FAMILIES
        for key, s in http if only is None or requests.name in only else ():
            text = self._text(key, extra)
            yield requests, f"{requests.name}{{{text}}}", 0 if key in zero else s.requests
        for family, attr in (
            (duration, "duration"),
            (req_bytes, "request_bytes"),
            (resp_bytes, "response_bytes"),
        ):
            if only is not None and family.name not in only:
                continue
            for key, s in http:
                text = self._text(key, extra)
                histogram: _Histogram = getattr(s, attr)
                for line, value in histogram.lines(family.name, text, key in zero):
                    yield family, line, value
        for family, attr in zip(
            tcp_families, ("opened", "closed", "sent", "received"), strict=True
        ):
            if only is not None and family.name not in only:
                continue
            for key, t in tcp:
                text = self._text(key, extra)
                yield family, f"{family.name}{{{text}}}", 0 if key in zero else getattr(t, attr)

    def exposition(
        self, extra: Labels = (), zero: Container[Labels] = (), timestamp_ms: int | None = None
    ) -> str:
        """The Prometheus text exposition (format 0.0.4) of every series, each sample stamped
        with ``timestamp_ms`` when given."""
        stamp = "" if timestamp_ms is None else f" {timestamp_ms}"
        lines: list[str] = []
        current: Family | None = None
        for family, line, value in self.samples(extra, zero):
            if family is not current:
                lines += [
                    f"# HELP {family.name} {family.help}",
                    f"# TYPE {family.name} {family.type}",
                ]
                current = family
            lines.append(f"{line} {_number(value)}{stamp}")
        return "\n".join(lines) + "\n" if lines else ""


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
