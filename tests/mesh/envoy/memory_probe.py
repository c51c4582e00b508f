"""Load a translated proxy configuration into a real Envoy 1.40 and read its memory.

What ``mesh.envoy.memory``'s model was fitted on and what its test re-measures: one proxy's
configuration as meshplay's translator builds it for an app plus ``extra`` Services in another
namespace (optionally each with a DestinationRule of two subsets: three clusters per service),
as a static bootstrap (listeners on free loopback ports), ``envoy --concurrency 1`` as the local
runner starts it; once ready, its admin ``/memory`` and the process's RSS. The process is
stopped by its PID.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.local.ca import LocalCA
from mesh.app.load import load_app
from mesh.envoy import bootstrap, translate_proxy
from mesh.envoy.memory import virtual_hosts
from mesh.envoy.translate import ProxyConfig
from mesh.model.common import Resource
from mesh.source.load import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import wait_ready

ROOT = Path(__file__).resolve().parents[3]
ENVOY = Path(sys.executable).parent / "envoy"


@dataclass(frozen=True)
class Measured:
    """One proxy configuration's size and what the real Envoy running it holds."""

    label: str
    config: ProxyConfig
    allocated: int
    heap_size: int
    rss_kb: int

    @property
    def allocated_mb(self) -> float:
        return self.allocated / 2**20

    def row(self) -> dict[str, Any]:
        c = self.config
        return {
            "label": self.label,
            "clusters": len(c.clusters),
            "listeners": len(c.listeners),
            "virtual_hosts": virtual_hosts(c),
            "endpoints": len(c.endpoints),
            "allocated_mb": round(self.allocated_mb, 3),
            "heap_size_mb": round(self.heap_size / 2**20, 3),
            "rss_mb": round(self.rss_kb / 1024, 1),
        }


def other_services(count: int, *, subsets: bool = False, namespace: str = "other-teams") -> str:
    """``count`` Services (one HTTP port, no selector) in ``namespace``, with a DestinationRule
    of two subsets each when ``subsets``."""
    docs = [
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}, labels: "
        "{istio-injection: enabled}}\n"
    ]
    for i in range(count):
        name = f"svc-{i:03d}"
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            "spec: {ports: [{name: http, port: 8080}]}\n"
        )
        if subsets:
            docs.append(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                f"metadata: {{name: {name}, namespace: {namespace}}}\n"
                f"spec: {{host: {name}, subsets: [{{name: v1, labels: {{version: v1}}}}, "
                "{name: v2, labels: {version: v2}}]}\n"
            )
    return "---\n".join(docs)


def config_for(app: str, pod: str, extra: int = 0, *, subsets: bool = False) -> ProxyConfig:
    """``pod``'s configuration in ``lessons/apps/<app>`` plus ``extra`` other Services."""
    resources: tuple[Resource, ...] = load_app(ROOT / "lessons" / "apps" / app).resources
    if extra:
        loaded = load_text(other_services(extra, subsets=subsets), "other-services.yaml")
        assert loaded.ok, [d.render() for d in loaded.errors]
        resources += tuple(loaded.resources)
    return translate_proxy(resources, build_topology(resources), pod)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _loopback_ports(node: Any, used: set[int]) -> None:
    """Every socket address a listener binds: a free port on 127.0.0.1, none twice."""
    if isinstance(node, dict):
        address = node.get("socket_address")
        if isinstance(address, dict):
            port = _free_port()
            while port in used:
                port = _free_port()
            used.add(port)
            address["address"], address["port_value"] = "127.0.0.1", port
        for value in node.values():
            _loopback_ports(value, used)
    elif isinstance(node, list):
        for value in node:
            _loopback_ports(value, used)


def measure(config: ProxyConfig, workdir: Path, label: str = "", settle_s: float = 0.3) -> Measured:
    """Start a real Envoy on ``config`` (static bootstrap, its workload's certificates), read
    ``/memory`` and VmRSS once it is ready and has settled, stop it."""
    _, ns, _, sa = config.pod.identity.removeprefix("spiffe://cluster.local/").split("/")
    ca = LocalCA(workdir / "ca")
    secrets = tuple(ca.issue(ns, sa).secrets().values())
    admin = _free_port()
    doc = bootstrap(config, admin_port=admin, secrets=secrets)
    used = {admin}
    for listener in doc["static_resources"]["listeners"]:
        _loopback_ports(listener.get("address"), used)
        _loopback_ports(listener.get("additional_addresses", []), used)
    path = workdir / f"{config.pod.name}-{len(config.clusters)}.json"
    path.write_text(json.dumps(doc))
    cmd = [str(ENVOY), "-c", str(path), "--concurrency", "1", "--disable-hot-restart"]
    proc = subprocess.Popen(
        [*cmd, "-l", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_ready(admin, proc, time.monotonic() + 30)
        time.sleep(settle_s)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/memory", timeout=5) as resp:
            memory = json.loads(resp.read())
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        rss_kb = int(next(x for x in status if x.startswith("VmRSS:")).split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return Measured(
        label or config.pod.name, config, int(memory["allocated"]), int(memory["heap_size"]), rss_kb
    )
