"""``proxy_config`` ``memory_mb`` on a cluster: each proxy's Envoy heap, read from its admin.

On a cluster the admin port listens on localhost inside the pod, so the runner runs
``pilot-agent request GET memory`` in the ``istio-proxy`` container (what istioctl does for
``config_dump``) and takes ``allocated`` of Envoy's ``/memory`` answer. Proved here: the parser
reads the real Envoy 1.40's answer, and the runner's exec reaches the fake API's proxies (a pod
without a sidecar, or an Envoy that does not answer, is "no data" with the reason reported).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cluster.kube import admin
from cluster.kube.api import KubeApi
from cluster.kube.live import LiveCluster, envoy_allocated_mb
from cluster.kube.pods import PodRef
from cluster.local.envoy import envoy_binary
from mesh.lesson import load_lesson
from tests.cluster.kube.fake_api import FakeKube
from tests.cluster.kube.test_runner_fake import FAST, ROOT


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_parser_reads_real_envoys_memory_answer(tmp_path: Path) -> None:
    """Envoy 1.40's ``/memory`` prints its byte counts as JSON strings (protobuf's uint64):
    ``allocated`` in MiB is what the runner grades; anything else is no answer."""
    port = _port()
    config = tmp_path / "envoy.json"
    config.write_text(json.dumps({"admin": {"address": {"socket_address": {
        "address": "127.0.0.1", "port_value": port}}}}))  # fmt: skip
    argv = [envoy_binary(), "-c", str(config), "--concurrency", "1", "--use-dynamic-base-id",
            "--log-level", "error"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/memory", timeout=1) as r:
                    text = r.read().decode()
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "envoy did not start"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    answer = json.loads(text)
    assert isinstance(answer["allocated"], str)
    mb = envoy_allocated_mb(text)
    assert mb == int(answer["allocated"]) / 2**20
    assert 0.5 < mb < 200
    assert envoy_allocated_mb("Error: dial tcp 127.0.0.1:15000: connect: refused") is None
    assert envoy_allocated_mb(json.dumps({"heap_size": "1"})) is None


@pytest.fixture
def shop(fake: FakeKube, api: KubeApi) -> FakeKube:
    """The fake cluster with the shop app (postgres opts out of injection)."""
    app = load_lesson(ROOT / "lessons" / "01-request-routing").app
    admin.up(api, app, "shop", report=lambda _t: None, timeouts=FAST)
    return fake


def _pod(fake: FakeKube, prefix: str) -> PodRef:
    found = next(p for p in fake.find("Pod", "shop") if p["metadata"]["name"].startswith(prefix))
    return PodRef(found["metadata"]["name"], "shop", "", found)


def test_the_heap_is_read_through_exec_in_the_proxy_container(shop: FakeKube, api: KubeApi) -> None:
    """``pilot-agent request GET memory`` in the pod's ``istio-proxy``: the heap in MiB; an
    Envoy that does not answer, or a pod with no proxy, gives None and says why."""
    reports: list[str] = []
    cluster = LiveCluster(api, "shop", FAST, reports.append)
    shop.proxy_memory = lambda _k, _ns, pod: 9 * 2**20 if pod.startswith("product-v1") else None
    product = _pod(shop, "product-v1")
    assert cluster.proxy_memory_mb(product) == 9.0
    assert shop.execs[-1] == (
        product.name,
        "istio-proxy",
        ["pilot-agent", "request", "GET", "memory"],
    )
    assert cluster.proxy_memory_mb(_pod(shop, "user-v1")) is None
    assert "connection refused" in reports[-1]
    assert cluster.proxy_memory_mb(_pod(shop, "postgres")) is None
    assert "memory of shop/postgres-" in reports[-1]
