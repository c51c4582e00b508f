"""What a running Envoy 1.40 remembers of outlier detection, and the simulator with it.

One Envoy with one cluster of two endpoints from file CDS (as the local runner pushes config):
``good`` answers, ``bad`` refuses connections. ``consecutive_5xx: 1`` ejects ``bad`` at its first
connection failure for ``base_ejection_time`` (3 s). Then:

* ``bad``'s server starts (the pod is back): Envoy does not try it, it stays ejected (outlier
  detection is passive; there is no active health check);
* a push of the very same cluster (a new ``version_info``) keeps the ejection;
* at the first ``interval`` sweep after its 3 s, ``bad`` is healthy again;
* ejected once more, a push that *changes* the cluster (``connect_timeout``) replaces it, with a
  fresh detector: ``bad`` is healthy at once (``cluster_manager.cluster_modified``).

The simulator's :class:`sim.cluster.ClusterRuntime` goes through the same sequence with the same
cluster and must tell the same story: what lets it carry outlier state from one lesson step into
the next (``sim.runner``) and forget it on a changed cluster."""

from __future__ import annotations

import http.server
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import simpy

from cluster.local.envoy import envoy_binary
from sim.cluster import ClusterRuntime
from sim.xds.clusters import compile_cluster
from tests.mesh.envoy.real_envoy import wait_ready

pytestmark = pytest.mark.envoy

BASE_S = 3.0
NAME = "outbound|80||up.default.svc.cluster.local"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Pod(http.server.ThreadingHTTPServer):
    hits = 0


class _Ok(http.server.BaseHTTPRequestHandler):
    server: _Pod

    def do_GET(self) -> None:
        self.server.hits += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _Server:
    """An HTTP server on 127.0.0.1:``port`` that can stop and start again (a pod)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.server: _Pod | None = None

    @property
    def hits(self) -> int:
        return self.server.hits if self.server is not None else 0

    def start(self) -> None:
        self.server = _Pod(("127.0.0.1", self.port), _Ok)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def cluster(good: int, bad: int, connect_timeout: str = "1s") -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": NAME,
        "type": "STATIC",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
        "outlier_detection": {
            "consecutive_5xx": 1,
            "interval": "1s",
            "base_ejection_time": f"{BASE_S:g}s",
            "max_ejection_percent": 100,
        },
        "load_assignment": {
            "cluster_name": NAME,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": p}
                                }
                            }
                        }
                        for p in (good, bad)
                    ]
                }
            ],
        },
    }


class _Envoy:
    def __init__(self, folder: Path, good: int, bad: int) -> None:
        self.folder, self.good, self.bad = folder, good, bad
        self.listen, self.admin = _free_port(), _free_port()
        self.version = 0
        (folder / "cds").mkdir()
        self.push("1s")
        boot = {
            "admin": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin}}
            },
            "node": {"id": "outlier", "cluster": "outlier"},
            "dynamic_resources": {
                "cds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": {
                        "path": str(folder / "cds" / "cds.json"),
                        "watched_directory": {"path": str(folder / "cds")},
                    },
                }
            },
            "static_resources": {"listeners": [self._listener()]},
        }
        config = folder / "envoy.json"
        config.write_text(json.dumps(boot))
        cmd = [envoy_binary(), "-c", str(config), "--concurrency", "1", "--disable-hot-restart"]
        self.proc = subprocess.Popen([*cmd, "-l", "error"], stderr=subprocess.PIPE)
        wait_ready(self.admin, self.proc, time.monotonic() + 30)

    def _listener(self) -> dict[str, Any]:
        hcm = {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "outlier",
            "http_filters": [
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                    },
                }
            ],
            "route_config": {
                "validate_clusters": False,
                "virtual_hosts": [
                    {
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": NAME}}],
                    }
                ],
            },
        }
        return {
            "name": "outlier",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.listen}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm,
                        }
                    ]
                }
            ],
        }

    def push(self, connect_timeout: str) -> None:
        """Rename a new CDS file into place (as the local runner's file xDS does)."""
        self.version += 1
        tmp = self.folder / "cds" / ".cds.json.tmp"
        body = {
            "version_info": str(self.version),
            "resources": [cluster(self.good, self.bad, connect_timeout)],
        }
        tmp.write_text(json.dumps(body))
        os.rename(tmp, self.folder / "cds" / "cds.json")

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}{path}", timeout=5) as r:
            text: str = r.read().decode()
            return text

    def request(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.listen}/", timeout=5) as r:
                status: int = r.status
                return status
        except urllib.error.HTTPError as e:
            return e.code

    def bad_ejected(self) -> bool:
        flags = f"{NAME}::127.0.0.1:{self.bad}::health_flags::"
        line = next(x for x in self._get("/clusters").splitlines() if x.startswith(flags))
        return "failed_outlier_check" in line

    def stat(self, name: str) -> int:
        for line in self._get(f"/stats?filter={name}").splitlines():
            key, _, value = line.partition(": ")
            if key.endswith(name):
                return int(value)
        return 0

    def wait_for(self, ok: Any, timeout_s: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if ok():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError("timed out")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server]]:
    good, bad = _Server(_free_port()), _Server(_free_port())
    good.start()
    try:
        yield good, bad
    finally:
        good.stop()
        bad.stop()


def _envoy_story(tmp_path: Path, good: _Server, bad: _Server) -> dict[str, object]:
    envoy = _Envoy(tmp_path, good.port, bad.port)
    story: dict[str, object] = {}
    try:
        envoy.wait_for(lambda: envoy.stat("cluster_manager.active_clusters") >= 1, 10)
        statuses = [envoy.request() for _ in range(4)]
        assert 503 in statuses, statuses
        envoy.wait_for(envoy.bad_ejected, 2)
        ejected_at = time.monotonic()
        bad.start()  # the pod is back
        answered = [envoy.request() for _ in range(6)]
        assert answered == [200] * 6, answered
        story["tried while back"] = bad.hits > 0
        story["ejected after it came back"] = envoy.bad_ejected()
        envoy.push("1s")  # the same cluster again
        envoy.wait_for(lambda: envoy.stat("cluster_manager.cds.update_success") >= 2, 5)
        story["ejected after the same cluster"] = envoy.bad_ejected()
        envoy.wait_for(lambda: not envoy.bad_ejected(), BASE_S + 5)
        story["back after"] = round(time.monotonic() - ejected_at)
        bad.stop()

        def failed_again() -> bool:
            envoy.request()
            return envoy.bad_ejected()

        envoy.wait_for(failed_again, 5)
        envoy.push("2s")  # a changed cluster
        envoy.wait_for(lambda: envoy.stat("cluster_manager.cluster_modified") >= 1, 5)
        story["ejected after a changed cluster"] = envoy.bad_ejected()
    finally:
        envoy.stop()
    return story


def _sim_story(good: int, bad: int) -> dict[str, object]:
    env = simpy.Environment()
    rt = ClusterRuntime.create(compile_cluster(cluster(good, bad), None), env, random.Random(1))
    host = next(h for h in rt.hosts if h.key == f"127.0.0.1:{bad}")
    env.run(until=0.3)
    assert rt.record_outcome(host, 503, local_failure=True)
    story: dict[str, object] = {}
    picks = [rt.pick_host(None, None, 1) for _ in range(6)]
    story["tried while back"] = host in picks
    story["ejected after it came back"] = rt.is_ejected(host, env.now)
    rt.update(compile_cluster(cluster(good, bad), None))
    story["ejected after the same cluster"] = rt.is_ejected(host, env.now)
    while rt.is_ejected(host, env.now):
        env.run(until=env.now + 0.05)
    story["back after"] = round(env.now - 0.3)
    assert rt.record_outcome(host, 503, local_failure=True)
    rt.update(compile_cluster(cluster(good, bad, "2s"), None))
    story["ejected after a changed cluster"] = rt.is_ejected(host, env.now)
    return story


def test_envoy_and_the_sim_remember_an_ejection_alike(
    tmp_path: Path, servers: tuple[_Server, _Server]
) -> None:
    good, bad = servers
    real = _envoy_story(tmp_path, good, bad)
    assert real["tried while back"] is False
    assert real["ejected after it came back"] is True
    assert real["ejected after the same cluster"] is True
    assert BASE_S <= float(str(real["back after"])) <= BASE_S + 2  # the sweep after 3 s
    assert real["ejected after a changed cluster"] is False
    modelled = _sim_story(good.port, bad.port)
    assert modelled["back after"] in (BASE_S, BASE_S + 1)
    del real["back after"], modelled["back after"]
    assert modelled == real
