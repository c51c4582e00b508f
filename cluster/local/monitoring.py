"""Monitoring for a local mesh: Prometheus scraping every proxy, and a trace collector.

What a cluster's Istio add-ons do, as processes of the mesh (started by its supervisor, on
allocated ports, stopped with it):

* the **exporter** (:mod:`cluster.local.exporter`): Istio's standard metrics per proxy, one
  scrape target each (``/metrics/<pod>``), counted from the proxy's access log;
* **Prometheus** (Debian's package) scraping those targets every second (job
  ``istio-proxy``) and every Envoy's own ``/stats/prometheus`` every 5 seconds (job
  ``envoy-stats``; ``usedonly``: the stats that ever changed, as the ~4,000 of each Envoy would
  otherwise dominate Prometheus), with the golden-signal alerting rules and the lesson's own loaded; every
  target carries ``pod``, ``namespace`` and ``workload`` labels, ``instance`` is the pod;
* the **collector** (:mod:`cluster.local.collector`), Zipkin's v2 API: with tracing on, every
  sidecar's tracer reports to it (:mod:`mesh.envoy.tracing`), as to
  ``zipkin.istio-system:9411``.

:class:`Monitoring` is attached to a :class:`~cluster.local.mesh.LocalMesh`: ``prepare`` before
the mesh starts (the collector must exist before the proxies' config names it), ``start``
after. The local runner's executor with monitoring, the lesson engine's source of PromQL
answers, is in :mod:`cluster.local.monitored`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cluster.local.apps import ROOT
from cluster.local.mesh import LocalMesh
from cluster.local.ports import LOOPBACK, free_ports, start_lock
from cluster.local.xds import SPAN_FLUSH_MS
from cluster.prometheus import (
    PrometheusClient,
    ensure_binaries,
    prometheus_argv,
)
from mesh.envoy.tracing import OPENTELEMETRY, ZIPKIN, TracingOptions
from mesh.observe.openmetrics import ISTIO_JOB, SCRAPE_INTERVAL_S
from mesh.runner import RunnerError

__all__ = ["ENVOY_JOB", "GOLDEN_RULES", "Monitoring", "MonitoringInfo"]

GOLDEN_RULES = ROOT / "cluster" / "monitoring" / "prometheus" / "golden-signals.rules.yaml"
"""The alerting rules every meshplay Prometheus loads."""

ENVOY_JOB = "envoy-stats"
ENVOY_SCRAPE_S = 5.0
SPAN_FLUSH_S = SPAN_FLUSH_MS / 1000
"""How often the local proxies' tracers post their span batches: the runtime key
``tracing.zipkin.flush_interval_ms`` (or ``tracing.opentelemetry.``), which the local runner's
bootstrap lowers from Envoy's 5 s default (:data:`cluster.local.xds.SPAN_FLUSH_MS`)."""

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True, slots=True)
class MonitoringInfo:
    """Where a mesh's monitoring answers (written next to ``meshplay up``'s state file)."""

    prometheus: str
    collector: str
    exporter: str
    spans_file: str
    tracing_sampling: float | None

    def write(self, path: Path) -> None:
        """Write as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> MonitoringInfo | None:
        """The recorded monitoring, or None."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None


def _python_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


class Monitoring:
    """Prometheus, the Istio-metrics exporter and (with ``tracing``) the trace collector of
    one local mesh, run by the mesh's supervisor."""

    def __init__(
        self,
        mesh: LocalMesh,
        *,
        tracing: float | None = None,
        provider: str = ZIPKIN,
        rules: Sequence[Path] = (),
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.mesh = mesh
        self.sampling = tracing
        self.provider = provider
        """``zipkin`` or ``opentelemetry`` (OTLP/HTTP): the tracer the proxies run."""
        self.rules = list(dict.fromkeys(p.resolve() for p in (GOLDEN_RULES, *rules)))
        self.report = report
        self.dir = mesh.workdir / "monitoring"
        self.prometheus: PrometheusClient | None = None
        self.collector_port = 0
        self.exporter_port = 0
        self.prometheus_port = 0

    # -- before the mesh starts ---------------------------------------------------------------

    def prepare(self) -> None:
        """Check the binaries and the rules, start the collector and point the mesh's tracer
        at it (when tracing)."""
        _, promtool = ensure_binaries(self.report)
        self.dir.mkdir(parents=True, exist_ok=True)
        for rules in self.rules:
            checked = subprocess.run(
                [str(promtool), "check", "rules", str(rules)],
                capture_output=True,
                text=True,
                check=False,
            )
            if checked.returncode != 0:
                raise RunnerError(f"Prometheus would refuse {rules}:\n{checked.stdout[-1500:]}")
        if self.sampling is None:
            return
        with start_lock():
            (self.collector_port,) = free_ports(1)
            proc = self.mesh.supervisor.start(
                "collector",
                [
                    sys.executable,
                    "-m",
                    "cluster.local.collector",
                    str(self.collector_port),
                    str(self.spans_file),
                ],
                env=_python_env(),
                cwd=ROOT,
            )
            _wait_http(f"{self.collector_url}/healthz", 10.0, proc.running, "the trace collector")
        address = (LOOPBACK, self.collector_port)
        self.mesh.tracing = (
            TracingOptions.opentelemetry(self.sampling, address)
            if self.provider == OPENTELEMETRY
            else TracingOptions(sampling=self.sampling, collector_address=address)
        )

    @property
    def spans_file(self) -> Path:
        """Where the collector keeps every span (JSON lines)."""
        return self.dir / "spans.jsonl"

    @property
    def collector_url(self) -> str:
        """The collector's base URL ("" without tracing)."""
        return f"http://{LOOPBACK}:{self.collector_port}" if self.collector_port else ""

    # -- after the mesh started ---------------------------------------------------------------

    def start(self, timeout_s: float = 20.0) -> None:
        """Start the exporter and Prometheus for the mesh's proxies; wait until both answer and
        Prometheus has scraped every target once."""
        prometheus, _ = ensure_binaries(self.report)
        targets = [
            (name, pp)
            for name, pp in sorted(self.mesh.pods.items())
            if pp.proxy is not None and not pp.skipped
        ]
        with start_lock():
            self.exporter_port, self.prometheus_port = free_ports(2)
            config = {
                "port": self.exporter_port,
                "targets": [{"pod": n, "log": str(self.mesh.access_log(n))} for n, _ in targets],
            }
            exporter_config = self.dir / "exporter.json"
            exporter_config.write_text(json.dumps(config, indent=1), encoding="utf-8")
            exporter = self.mesh.supervisor.start(
                "exporter",
                [sys.executable, "-m", "cluster.local.exporter", str(exporter_config)],
                env=_python_env(),
                cwd=ROOT,
            )
            prom_config = self.dir / "prometheus.yml"
            prom_config.write_text(self.prometheus_config(), encoding="utf-8")
            prom = self.mesh.supervisor.start(
                "prometheus",
                prometheus_argv(prometheus, prom_config, self.dir / "tsdb", self.prometheus_port),
                env={"PATH": "/usr/bin:/bin"},
            )
            _wait_http(f"{self.exporter_url}/healthz", timeout_s, exporter.running, "the exporter")
            client = PrometheusClient(f"http://{LOOPBACK}:{self.prometheus_port}")
            client.wait_ready(timeout_s, prom.running)
        self.prometheus = client
        client.wait_scraped(time.time(), timeout_s, jobs=[ISTIO_JOB])

    @property
    def exporter_url(self) -> str:
        """The exporter's base URL."""
        return f"http://{LOOPBACK}:{self.exporter_port}"

    def prometheus_config(self) -> str:
        """The generated Prometheus configuration (JSON, which YAML reads)."""
        istio: list[dict[str, Any]] = []
        envoy: list[dict[str, Any]] = []
        for name, pp in sorted(self.mesh.pods.items()):
            if pp.proxy is None or pp.skipped:
                continue
            labels = {
                "instance": name,
                "pod": name,
                "namespace": pp.pod.namespace,
                "workload": pp.pod.workload,
            }
            istio.append(
                {
                    "targets": [f"{LOOPBACK}:{self.exporter_port}"],
                    "labels": {**labels, "__metrics_path__": f"/metrics/{name}"},
                }
            )
            envoy.append({"targets": [f"{LOOPBACK}:{pp.admin_port}"], "labels": labels})
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_INTERVAL_S:g}s",
                "scrape_timeout": f"{SCRAPE_INTERVAL_S:g}s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(p) for p in self.rules],
            "scrape_configs": [
                {"job_name": ISTIO_JOB, "static_configs": istio},
                {
                    "job_name": ENVOY_JOB,
                    "scrape_interval": f"{ENVOY_SCRAPE_S:g}s",
                    "scrape_timeout": f"{ENVOY_SCRAPE_S:g}s",
                    "metrics_path": "/stats/prometheus",
                    "params": {"usedonly": [""]},
                    "static_configs": envoy,
                },
            ],
        }
        return json.dumps(config, indent=1) + "\n"

    def info(self) -> MonitoringInfo:
        """Where everything answers."""
        return MonitoringInfo(
            prometheus=f"http://{LOOPBACK}:{self.prometheus_port}",
            collector=self.collector_url,
            exporter=self.exporter_url,
            spans_file=str(self.spans_file) if self.collector_port else "",
            tracing_sampling=self.sampling,
        )

    def settle(self, after: float) -> float:
        """Wait until Prometheus holds every request logged before epoch ``after``; returns
        the whole second (a sample time of every target) from which queries see them all.

        That is the second grid point after ``after`` (a new series shows its count from its
        second sample on); every target must have been scraped after it."""
        interval = SCRAPE_INTERVAL_S
        end = math.ceil(after / interval) * interval + interval
        if self.prometheus is not None:
            self.prometheus.wait_scraped(end + interval, 4 * interval + 5.0, jobs=[ISTIO_JOB])
        return end

    def flush_spans(self, quiet_s: float = 0.5) -> int:
        """Wait for the proxies' last span batches: until the collector's count has not moved
        for ``quiet_s`` (and at least two flush intervals, so every proxy's timer fired once
        after the last request ended). Returns the span count."""
        if not self.collector_url:
            return 0
        start = time.monotonic()
        earliest = start + 2 * SPAN_FLUSH_S + 0.1
        deadline = earliest + max(quiet_s, SPAN_FLUSH_S) + 5.0
        last, since = -1, start
        while time.monotonic() < deadline:
            count = _span_count(self.collector_url)
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() >= earliest and time.monotonic() - since >= quiet_s:
                break
            time.sleep(0.1)
        return max(last, 0)


def _span_count(url: str) -> int:
    try:
        with _OPENER.open(f"{url}/api/v2/spans/count", timeout=1.0) as resp:
            return int(json.loads(resp.read())["count"])
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return -1


def _wait_http(url: str, timeout_s: float, alive: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with _OPENER.open(url, timeout=1.0) as resp:
                if int(resp.status) == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if not alive():
            raise RunnerError(f"{what} exited while starting")
        if time.monotonic() > deadline:
            raise RunnerError(f"{what} did not answer at {url} in {timeout_s:g}s")
        time.sleep(0.05)
