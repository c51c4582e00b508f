"""Envoy's OpenTelemetry tracer, configured as istiod does for an ``opentelemetry`` provider with
``http``: real Envoy 1.40 sidecars export OTLP/HTTP (protobuf) to the collector, which reads it
into the same span trees the Zipkin tracer gives (one tree per request, parent links across
every hop, the proxies' node clusters as service names)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from cluster.local.collector import read_spans_file
from cluster.local.monitored import MonitoredLocalExecutor
from mesh.engine import run_lesson
from mesh.envoy.tracing import TracingOptions
from mesh.lesson import load_lesson
from mesh.runner import RunOptions

pytestmark = [pytest.mark.envoy, pytest.mark.prometheus, pytest.mark.slow]

LESSONS = Path(__file__).resolve().parents[3] / "lessons"


class SpanProbe(MonitoredLocalExecutor):
    """Reads the collector's spans before the mesh stops."""

    spans: list[dict[str, Any]]
    tracing: TracingOptions | None
    batches: dict[str, int]

    def close(self) -> None:
        assert self.monitoring is not None and self.mesh is not None
        self.tracing = self.mesh.tracing
        self.monitoring.flush_spans()
        url = f"{self.monitoring.collector_url}/api/v2/spans/count"
        with urllib.request.urlopen(url, timeout=5) as resp:
            self.batches = json.loads(resp.read())["batches"]
        self.spans = read_spans_file(self.monitoring.spans_file)
        super().close()


def test_envoys_opentelemetry_tracer_exports_otlp_http_that_the_collector_reads(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lessons"
    shutil.copytree(LESSONS / "apps", root / "apps")
    shutil.copytree(LESSONS / "01-request-routing", root / "01")
    spec = root / "01" / "lesson.yaml"
    spec.write_text(
        spec.read_text() + "\ntracing: {sampling: 100, provider: opentelemetry}\n",
        encoding="utf-8",
    )
    lesson = load_lesson(root / "01")
    assert lesson.spec.tracing is not None and lesson.spec.tracing.provider == "opentelemetry"
    probe = SpanProbe(tmp_path / "mesh", time_scale=0.4)
    run = run_lesson(probe, lesson, RunOptions(seed=1, until_step=1))
    assert probe.tracing is not None and probe.tracing.provider == "opentelemetry"
    # Envoy's OTel tracer with an http_service posts protobuf, never Zipkin's JSON
    assert set(probe.batches) == {"otlp-protobuf"} and probe.batches["otlp-protobuf"] > 0

    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in probe.spans:
        traces[span["traceId"]].append(span)
    requests = Counter(r.request_id for r in run.steps[0].records)
    assert len(traces) == len(requests) > 0
    for spans in traces.values():
        assert all(len(s["traceId"]) == 32 and len(s["id"]) == 16 for s in spans)
        ids = {s["id"] for s in spans}
        roots = [s for s in spans if not s.get("parentId")]
        assert len(roots) == 1 and roots[0]["kind"] == "SERVER"
        assert all(s["parentId"] in ids for s in spans if s.get("parentId"))
        kinds = sorted((s["kind"], s["localEndpoint"]["serviceName"]) for s in spans)
        assert kinds[:2] == [("CLIENT", "api-gateway-v1.shop"), ("SERVER", "api-gateway-v1.shop")]
        assert kinds[2][0] == "SERVER" and kinds[2][1].startswith("product-v")
        assert all(s["duration"] > 0 and s["timestamp"] > 1_700_000_000_000_000 for s in spans)
        assert all(s["tags"].get("http.status_code") == "200" for s in spans)
    assert sorted(len(s) for s in traces.values()) == sorted(requests.values())
    # the access log names each request's trace (from its W3C traceparent), so `meshplay logs
    # --trace` works with this provider too
    by_request = {r.request_id: r.trace_id for r in run.steps[0].records}
    assert set(by_request.values()) == set(traces)
