"""Time the Istio -> Envoy translation on synthetic meshes (a plain script, not a test).

    .venv/bin/python benchmarks/bench_translate.py [--services 50 1000] [--repeat 3]

Each mesh has N services in one namespace, each with 3 versions (one pod each), a
DestinationRule with 3 subsets and a VirtualService splitting 80/15/5. Reported:

- ``one proxy``: ``translate_proxy`` for a single sidecar (what istiod computes per push for one
  proxy: it sees all N services, i.e. ~4N clusters, 4N endpoint sets, N virtual hosts);
- ``all proxies``: ``translate`` for every pod (3N sidecars). Per-proxy output is inherently
  N x 3N in size; the translator shares the outbound part between proxies with the same scope,
  so this measures that sharing plus the per-pod listeners and inbound config.

The target (1000 services < 2 s) refers to the *one proxy* number, which is what istiod's per-
proxy push computes; both numbers are printed.
"""

from __future__ import annotations

import argparse
import time

from mesh.envoy import translate, translate_proxy
from mesh.model import Resource
from mesh.source import load_text
from mesh.topology import build_topology


def mesh_yaml(services: int) -> str:
    """N services x 3 versions, DR with 3 subsets, VS 80/15/5."""
    docs = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench, labels: {istio-injection: enabled}}"
    ]
    for i in range(services):
        name = f"svc{i:04d}"
        docs.append(
            f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: bench}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 8080, targetPort: 8080}}]"""
        )
        docs.extend(
            f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}-{version}, namespace: bench}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {name}, version: {version}}}}}
    spec:
      containers: [{{name: app, image: app, ports: [{{containerPort: 8080}}]}}]"""
            for version in ("v1", "v2", "v3")
        )
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: bench}}
spec:
  host: {name}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
  - {{name: v3, labels: {{version: v3}}}}"""
        )
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: bench}}
spec:
  hosts: [{name}]
  http:
  - route:
    - {{destination: {{host: {name}, subset: v1}}, weight: 80}}
    - {{destination: {{host: {name}, subset: v2}}, weight: 15}}
    - {{destination: {{host: {name}, subset: v3}}, weight: 5}}"""
        )
    return "\n---\n".join(docs)


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def run(services: int, repeat: int) -> None:
    start = time.perf_counter()
    loaded = load_text(mesh_yaml(services), f"bench-{services}.yaml")
    load_s = time.perf_counter() - start
    resources: tuple[Resource, ...] = loaded.resources
    start = time.perf_counter()
    topology = build_topology(resources, include_istio_system=False)
    topo_s = time.perf_counter() - start
    pod = topology.pods[0].name
    one = _best(lambda: translate_proxy(resources, topology, pod), repeat)
    proxy = translate_proxy(resources, topology, pod)
    every = _best(lambda: translate(resources, topology), max(1, repeat - 1))
    print(
        f"{services:5d} services, {len(topology.pods):5d} pods | load {load_s:6.2f}s "
        f"topology {topo_s:6.2f}s | one proxy {one:6.3f}s "
        f"({len(proxy.clusters)} clusters, {len(proxy.endpoints)} endpoint sets, "
        f"{sum(len(r['virtual_hosts']) for r in proxy.routes)} vhosts) | "
        f"all {len(topology.pods)} proxies {every:6.3f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, nargs="+", default=[50, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for n in args.services:
        run(n, args.repeat)


if __name__ == "__main__":
    main()
