"""Metrics over RequestRecords, with Istio's standard names and labels.

The same functions read records from every runner, so a lesson's numbers mean the same thing on
``sim``, ``local`` and ``kube``. ``edge_stats`` gives the per-edge table the CLI and TUI show;
``prometheus_text`` renders ``istio_requests_total`` and ``istio_request_duration_milliseconds``
in the Prometheus exposition format, labelled as Istio's stats filter labels them.

TCP connections (records with ``request_protocol="tcp"``) are not requests: Istio counts them in
``istio_tcp_connections_opened_total`` / ``istio_tcp_connections_closed_total`` and their bytes
in ``istio_tcp_sent_bytes_total`` (server to client, Envoy's ``%BYTES_SENT%`` towards the
downstream) and ``istio_tcp_received_bytes_total`` (client to server), with the same labels
(``request_protocol="tcp"``, ``response_code="0"``).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.records import Reporter, RequestRecord

__all__ = [
    "DURATION_BUCKETS_MS",
    "TCP_METRICS",
    "EdgeStats",
    "bucket_quantile",
    "edge_key",
    "edge_stats",
    "percentile",
    "prometheus_text",
    "tcp_totals",
]

DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
"""Istio's default buckets for istio_request_duration_milliseconds."""

OUTSIDE = "outside"
INGRESS_APP = "istio-ingressgateway"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bucket_quantile(
    values: Sequence[float], q: float, bounds: Sequence[float] = DURATION_BUCKETS_MS
) -> float:
    """The q-quantile (0..1) of ``values`` as Prometheus' ``histogram_quantile`` estimates it
    from cumulative buckets with upper bounds ``bounds`` (Istio's for request durations): the
    bucket the rank falls in, then linear interpolation inside it (0 as the first lower bound;
    a rank beyond the last finite bound gives that bound). A dashboard's p99 panel shows this,
    not the exact percentile: with most requests between 1 and 5 ms, an exact p99 of 2.1 ms reads
    as 4.7 ms."""
    if not values:
        return math.nan
    rank = q * len(values)
    below = 0
    lower = 0.0
    for upper in bounds:
        cumulative = sum(1 for v in values if v <= upper)
        if cumulative >= rank and cumulative > below:
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        below = cumulative
        lower = upper
    return float(bounds[-1])


def edge_key(record: RequestRecord) -> tuple[str, str]:
    """(client, service) of a record: the client's app label, ``outside`` for callers outside
    the mesh, ``ingress`` for the ingress gateway; the destination's short service name."""
    if record.source_workload in ("", RequestRecord.UNKNOWN):
        client = OUTSIDE
    elif INGRESS_APP in (record.source_app, record.source_workload):
        client = "ingress"
    else:
        client = record.source_app or record.source_workload
    return client, record.destination_service_name


def client_side(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    """One record per request per edge, as the client saw it.

    Source-reported records where the client has a proxy; destination-reported records for
    callers outside the mesh (they have no proxy to report).
    """
    return [
        r
        for r in records
        if r.reporter is Reporter.SOURCE or r.source_workload in ("", RequestRecord.UNKNOWN)
    ]


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """The per-edge row: requests, rate, success, latency, flags, version split."""

    client: str
    service: str
    requests: int
    rps: float
    success_rate: float
    p50_ms: float
    p99_ms: float
    flags: tuple[tuple[str, int], ...]
    versions: tuple[tuple[str, int], ...]
    codes: tuple[tuple[int, int], ...]
    mtls: float

    @property
    def name(self) -> str:
        """``client->service``"""
        return f"{self.client}->{self.service}"


def edge_stats(records: Iterable[RequestRecord], duration_s: float) -> list[EdgeStats]:
    """Per-edge statistics of the client-side records, sorted by edge name."""
    groups: dict[tuple[str, str], list[RequestRecord]] = defaultdict(list)
    for r in client_side(records):
        groups[edge_key(r)].append(r)
    rows = []
    for (client, service), rs in sorted(groups.items()):
        durations = [r.duration_ms for r in rs]
        flags: Counter[str] = Counter(f for r in rs for f in r.response_flags)
        versions: Counter[str] = Counter(r.destination_version or "-" for r in rs)
        codes: Counter[int] = Counter(r.response_code for r in rs)
        mtls = sum(1 for r in rs if r.connection_security_policy.value == "mutual_tls")
        rows.append(
            EdgeStats(
                client=client,
                service=service,
                requests=len(rs),
                rps=len(rs) / duration_s if duration_s > 0 else math.nan,
                success_rate=sum(1 for r in rs if r.ok) / len(rs),
                p50_ms=percentile(durations, 50),
                p99_ms=percentile(durations, 99),
                flags=tuple(sorted(flags.items())),
                versions=tuple(sorted(versions.items())),
                codes=tuple(sorted(codes.items())),
                mtls=mtls / len(rs),
            )
        )
    return rows


def _labels(r: RequestRecord) -> tuple[tuple[str, str], ...]:
    return (
        ("reporter", r.reporter.value),
        ("source_workload", r.source_workload or "unknown"),
        ("source_workload_namespace", r.source_namespace or "unknown"),
        ("source_principal", r.source_principal or "unknown"),
        ("source_app", r.source_app or "unknown"),
        ("source_version", r.source_version or "unknown"),
        ("destination_workload", r.destination_workload or "unknown"),
        ("destination_workload_namespace", r.destination_namespace or "unknown"),
        ("destination_principal", r.destination_principal or "unknown"),
        ("destination_app", r.destination_app or "unknown"),
        ("destination_version", r.destination_version or "unknown"),
        ("destination_service", r.destination_service or "unknown"),
        ("destination_service_name", r.destination_service_name or "unknown"),
        ("destination_service_namespace", r.destination_namespace or "unknown"),
        ("request_protocol", r.request_protocol),
        ("response_code", str(r.response_code)),
        ("response_flags", r.flags_text),
        ("connection_security_policy", r.connection_security_policy.value),
    )


def _fmt(labels: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels)


TCP_METRICS: tuple[tuple[str, str], ...] = (
    ("istio_tcp_connections_opened_total", "TCP connections opened."),
    ("istio_tcp_connections_closed_total", "TCP connections closed."),
    ("istio_tcp_sent_bytes_total", "Bytes sent during the response of TCP connections."),
    ("istio_tcp_received_bytes_total", "Bytes received during the request of TCP connections."),
)
"""Istio's TCP metrics (name, help), in the order :func:`tcp_totals` gives their values."""


def tcp_totals(
    records: Iterable[RequestRecord],
) -> dict[tuple[tuple[str, str], ...], tuple[int, int, int, int]]:
    """Per label set of the TCP records: (opened, closed, sent bytes, received bytes).

    Every simulated or logged connection is a finished one (its record is written at close),
    so opened and closed are equal at the end of a run."""
    out: dict[tuple[tuple[str, str], ...], tuple[int, int, int, int]] = {}
    for r in records:
        if not r.is_tcp:
            continue
        key = _labels(r)
        opened, closed, sent, received = out.get(key, (0, 0, 0, 0))
        out[key] = (opened + 1, closed + 1, sent + r.bytes_sent, received + r.bytes_received)
    return out


def prometheus_text(records: Iterable[RequestRecord]) -> str:
    """``istio_requests_total`` and ``istio_request_duration_milliseconds`` as Prometheus text,
    then the ``istio_tcp_*`` counters when there are TCP connections."""
    records = list(records)
    counts: Counter[tuple[tuple[str, str], ...]] = Counter()
    durations: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for r in records:
        if r.is_tcp:
            continue
        key = _labels(r)
        counts[key] += 1
        durations[key].append(r.duration_ms)
    lines = [
        "# HELP istio_requests_total Requests processed, by the proxy that reported them.",
        "# TYPE istio_requests_total counter",
    ]
    lines += [f"istio_requests_total{{{_fmt(k)}}} {n}" for k, n in sorted(counts.items())]
    lines += [
        "# HELP istio_request_duration_milliseconds Request duration.",
        "# TYPE istio_request_duration_milliseconds histogram",
    ]
    for key, values in sorted(durations.items()):
        for bound in DURATION_BUCKETS_MS:
            n = sum(1 for v in values if v <= bound)
            lines.append(
                f'istio_request_duration_milliseconds_bucket{{{_fmt(key)},le="{bound:g}"}} {n}'
            )
        lines.append(
            f'istio_request_duration_milliseconds_bucket{{{_fmt(key)},le="+Inf"}} {len(values)}'
        )
        lines.append(f"istio_request_duration_milliseconds_sum{{{_fmt(key)}}} {sum(values):g}")
        lines.append(f"istio_request_duration_milliseconds_count{{{_fmt(key)}}} {len(values)}")
    tcp = sorted(tcp_totals(records).items())
    if tcp:
        for i, (name, text) in enumerate(TCP_METRICS):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
            lines += [f"{name}{{{_fmt(k)}}} {values[i]}" for k, values in tcp]
    return "\n".join(lines) + "\n"
