"""RequestRecords from the ``istio-proxy`` containers' logs.

A sidecar's log mixes pilot-agent's and Envoy's own lines with the access log; the access-log
lines are the JSON objects that carry ``reporter`` and ``start_time`` (the formats of
:mod:`cluster.kube.telemetry`). Before :func:`mesh.envoy.accesslog.record_from_access_log`
parses a line, :func:`complete_entry` adds what Envoy could not write and the local translator
writes as literals: the facts of the pod the line came from (:class:`PodFacts`: its workload,
``app`` and ``version`` labels, SPIFFE identity and the Service it serves), and ``tcp`` as the
protocol of a connection without HTTP. :func:`link_callers` then gives each server-side line
the caller's workload from the client-side line of the same request (same ``x-request-id`` to
the same service), as Istio's metadata exchange would; a caller without a sidecar has no such
line and stays ``unknown`` (``outside``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mesh.envoy.accesslog import record_from_access_log
from mesh.envoy_api.names import parse_cluster_name
from mesh.records import RequestRecord

__all__ = [
    "PodFacts",
    "complete_entry",
    "link_callers",
    "link_clusters",
    "parse_log",
    "records_from_logs",
]

TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What the runner knows about the pod whose ``istio-proxy`` wrote a log."""

    name: str
    namespace: str
    workload: str
    app: str = ""
    version: str = ""
    service_account: str = "default"
    services: tuple[str, ...] = field(default=())
    """FQDNs of the Services that select the pod."""
    cluster: str = ""
    """The mesh cluster the pod runs in (a multi-cluster run; "" with one cluster)."""

    @property
    def principal(self) -> str:
        """``spiffe://cluster.local/ns/NS/sa/SA``"""
        return f"spiffe://{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def workload_metadata(self) -> str:
        """Istio's endpoint ``istio.workload`` metadata: ``name;ns;app;version;cluster``."""
        cluster = self.cluster or "Kubernetes"
        return f"{self.workload};{self.namespace};{self.app};{self.version};{cluster}"


def _blank(value: Any) -> bool:
    return value is None or value in ("", "-")


def parse_log(text: str) -> list[dict[str, Any]]:
    """The access-log entries of a container log (other lines skipped)."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "reporter" in entry and "start_time" in entry:
            out.append(entry)
    return out


def _service_of(entry: Mapping[str, Any], pod: PodFacts) -> str:
    """The Service a server-side line was for: the pod's only Service, else the one the
    authority names (``product:8080``, ``product.shop.svc.cluster.local``)."""
    if len(pod.services) == 1:
        return pod.services[0]
    authority = str(entry.get("authority") or "").rsplit(":", 1)[0]
    short = authority.split(".", 1)[0]
    for fqdn in pod.services:
        if fqdn.split(".", 1)[0] == short:
            return fqdn
    return f"{short}.{pod.namespace}.svc.cluster.local" if short else ""


def complete_entry(entry: Mapping[str, Any], pod: PodFacts) -> dict[str, Any]:
    """``entry`` with the facts of ``pod`` (the proxy that wrote it) filled in."""
    out = dict(entry)
    if _blank(out.get("protocol")) and _blank(out.get("method")):
        out["request_protocol"] = "tcp"
    if out.get("reporter") == "destination":
        out["destination_workload"] = pod.workload_metadata
        if _blank(out.get("destination_service")):
            out["destination_service"] = _service_of(out, pod)
        if _blank(out.get("destination_principal")) and not _blank(out.get("source_principal")):
            out["destination_principal"] = pod.principal
    else:
        out.update(
            source_workload=pod.workload,
            source_namespace=pod.namespace,
            source_app=pod.app,
            source_version=pod.version,
            source_principal=pod.principal,
        )
    return out


_CALLER_KEYS = ("source_workload", "source_namespace", "source_app", "source_version")


def link_callers(entries: Sequence[dict[str, Any]]) -> None:
    """Give server-side entries without a caller the caller of the client-side entry of the
    same request id to the same service (in place)."""
    callers: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entries:
        if e.get("reporter") != "source" or _blank(e.get("request_id")):
            continue
        parsed = parse_cluster_name(str(e.get("upstream_cluster") or ""))
        host = parsed.host if parsed is not None else ""
        callers.setdefault((str(e["request_id"]), host), e)
    for e in entries:
        if e.get("reporter") != "destination" or not _blank(e.get("source_workload")):
            continue
        rid = e.get("request_id")
        if _blank(rid):
            continue
        caller = callers.get((str(rid), str(e.get("destination_service") or "")))
        if caller is not None:
            for key in _CALLER_KEYS:
                e[key] = caller.get(key)


def link_clusters(entries: Sequence[dict[str, Any]]) -> None:
    """Fill ``source_cluster`` and ``destination_cluster`` (in place): each line's own side
    from the cluster of the proxy that wrote it, the other side from the other proxy's line of
    the same request id, as Istio's peer metadata exchange tells both sidecars."""
    sent: dict[str, str] = {}
    served: dict[str, str] = {}
    for e in entries:
        rid = e.get("request_id")
        if _blank(rid):
            continue
        if e.get("reporter") == "destination":
            served[str(rid)] = str(e.get("destination_cluster") or "")
        else:
            sent.setdefault(str(rid), str(e.get("source_cluster") or ""))
    for e in entries:
        rid = str(e.get("request_id") or "")
        if e.get("reporter") == "destination" and not e.get("source_cluster"):
            e["source_cluster"] = sent.get(rid, "")
        elif e.get("reporter") != "destination" and not e.get("destination_cluster"):
            e["destination_cluster"] = served.get(rid, "")


def records_from_logs(
    logs: Iterable[tuple[PodFacts, str]], run_started_at: float, since: float = float("-inf")
) -> list[RequestRecord]:
    """Every record in the given ``(pod, log text)`` pairs that started at or after ``since``
    (epoch seconds), times relative to ``run_started_at``, sorted by start time."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for pod, text in logs:
        for entry in parse_log(text):
            key = json.dumps(entry, sort_keys=True) + pod.name
            if key in seen:  # a pod's log read twice (before a kill and at the end)
                continue
            seen.add(key)
            completed = complete_entry(entry, pod)
            if pod.cluster:
                own = "destination" if entry.get("reporter") == "destination" else "source"
                completed[f"{own}_cluster"] = pod.cluster
            entries.append(completed)
    link_callers(entries)
    if any(e.get("source_cluster") or e.get("destination_cluster") for e in entries):
        link_clusters(entries)
    records = [
        replace(
            record_from_access_log(e, run_started_at=run_started_at),
            source_cluster=str(e.get("source_cluster") or ""),
            destination_cluster=str(e.get("destination_cluster") or ""),
        )
        for e in entries
    ]
    cutoff = since - run_started_at
    return sorted((r for r in records if r.start_time >= cutoff), key=lambda r: r.start_time)
