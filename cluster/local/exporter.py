"""The Istio-metrics exporter of a local mesh: one process, one scrape target per proxy.

In Istio every sidecar counts ``istio_requests_total`` and friends itself (the ``istio.stats``
filter) and Prometheus scrapes each pod's ``:15020/stats/prometheus``. Upstream Envoy has no
such filter, so this process plays it for the whole local mesh: every proxy writes one JSON
access-log line per request (with the same facts the stats filter labels by), and a scrape of
``/metrics/<pod>`` reads what that pod's proxy logged since the last scrape, counts it into the
pod's Istio metrics (:class:`mesh.observe.istio_metrics.ProxyMetrics`) and answers them in the
Prometheus text format. Work happens only when Prometheus scrapes.

Two things differ from scraping a real proxy, both so that a query over a step's window counts
exactly the requests of the step, as it does over a simulated run's TSDB:

* a series is shown at 0 on the first scrape that finds it and with its count from the next
  scrape on: Prometheus 2 ignores the value of a series' first sample in ``rate()`` and
  ``increase()``, so a real proxy's first requests of a new label set are lost to queries;
* every sample is stamped with the whole second of its scrape (Prometheus keeps exposed
  timestamps): every target's samples then sit on the same one-second grid, and a window
  from one whole second to another has samples at both ends, so ``increase()`` needs no
  extrapolation (with each target scraped at its own phase, it would add up to one scrape
  interval's worth).

Run as ``python -m cluster.local.exporter CONFIG.json`` (``{"port": N, "targets": [{"pod",
"log"}...]}``); the local mesh starts it under its supervisor.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cluster.accesslog import AccessLogTail
from mesh.envoy.accesslog import record_from_access_log
from mesh.observe.istio_metrics import Labels, ProxyMetrics, istio_labels
from mesh.observe.openmetrics import SCRAPE_INTERVAL_S

__all__ = ["ProxyTarget", "main", "serve"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ProxyTarget:
    """One proxy's access log and the Istio metrics counted from it so far."""

    pod: str
    log: Path
    metrics: ProxyMetrics = field(default_factory=ProxyMetrics)
    announced: set[Labels] = field(default_factory=set)
    labels: dict[tuple[object, ...], Labels] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tail: AccessLogTail = field(init=False)

    def __post_init__(self) -> None:
        self.tail = AccessLogTail(self.log)

    def scrape(self, now: float) -> str:
        """Count what the proxy logged since the last scrape; the exposition text, stamped
        with the whole second ``now`` falls in."""
        with self.lock:
            for entry in self.tail.read_entries():
                try:
                    self._count(entry)
                except (ValueError, KeyError, TypeError):
                    self.tail.bad_lines += 1
            keys = self.metrics.keys()
            fresh = keys - self.announced
            self.announced |= keys
            stamp = int(now // SCRAPE_INTERVAL_S * SCRAPE_INTERVAL_S * 1000)
            return self.metrics.exposition(zero=fresh, timestamp_ms=stamp)

    def _count(self, entry: dict[str, object]) -> None:
        """One access-log line into the metrics. The labels of a line depend only on its
        :data:`LABEL_KEYS` values, so they are worked out once per distinct combination (a
        series, in effect) and looked up after that."""
        key = tuple(entry.get(k) for k in LABEL_KEYS)
        labels = self.labels.get(key)
        if labels is None:
            labels = self.labels[key] = istio_labels(record_from_access_log(entry))
        micros = entry.get("duration_us")
        if isinstance(micros, int | float) and not isinstance(micros, bool):
            duration = float(micros) / 1000.0
        else:
            duration = float(_number(entry.get("duration_ms")))
        tcp = entry.get("request_protocol") == "tcp"
        received, sent = _number(entry.get("bytes_received")), _number(entry.get("bytes_sent"))
        self.metrics.count(labels, tcp, duration, received, sent)


LABEL_KEYS: tuple[str, ...] = (
    "request_protocol",
    "reporter",
    "source_workload",
    "source_namespace",
    "source_app",
    "source_version",
    "source_principal",
    "destination_workload",
    "destination_principal",
    "destination_service",
    "upstream_cluster",
    "response_code",
    "response_flags",
    "connection_security_policy",
)
"""The access-log fields an Istio metric label is made from (:func:`istio_labels` of
:func:`record_from_access_log`)."""


def _number(value: object) -> int:
    """Envoy writes numbers as JSON numbers, ``null`` when it has none."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _handler(targets: dict[str, ProxyTarget]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, "ok\n")
                return
            pod = path.removeprefix("/metrics/")
            target = targets.get(pod) if path.startswith("/metrics/") else None
            if target is None:
                self._send(404, f"no proxy {pod!r}; known: {', '.join(sorted(targets))}\n")
                return
            self._send(200, target.scrape(time.time()), CONTENT_TYPE)

        def _send(self, code: int, body: str, kind: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per scrape would drown the log

    return Handler


def serve(port: int, targets: Sequence[ProxyTarget]) -> ThreadingHTTPServer:
    """A server for ``targets`` on 127.0.0.1:``port`` (call ``serve_forever``)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler({t.pod: t for t in targets}))
    server.daemon_threads = True
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cluster.local.exporter CONFIG.json``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m cluster.local.exporter CONFIG.json\n")
        return 2
    config = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    targets = [ProxyTarget(t["pod"], Path(t["log"])) for t in config["targets"]]
    server = serve(int(config["port"]), targets)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
