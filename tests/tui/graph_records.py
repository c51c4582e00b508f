"""Records for the graph tests: requests between workloads as both sidecars report them, and a
generated mesh of many services (also used by benchmarks/bench_graph.py)."""

from __future__ import annotations

import random

from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord

NS = "shop"


def request(
    source: str,
    source_version: str,
    service: str,
    version: str,
    *,
    code: int = 200,
    flags: tuple[str, ...] = (),
    mtls: bool = True,
    ms: float = 5.0,
    at: float = 0.0,
    namespace: str = NS,
    host: str = "",
) -> list[RequestRecord]:
    """One request: the caller's record and, when a workload answered, the server's.

    ``source`` ``outside`` is the load generator (no sidecar: only the server reports); a
    ``version`` of ``unknown`` is a local reply of the caller's sidecar (only it reports)."""
    fqdn = host or f"{service}.{namespace}.svc.cluster.local"
    outside = source == "outside"
    app = "istio-ingressgateway" if source == "ingress" else source  # Istio's gateway label
    common = {
        "start_time": at,
        "duration_ms": ms,
        "source_workload": "unknown" if outside else f"{source}-{source_version}",
        "source_namespace": "" if outside else namespace,
        "source_principal": "",
        "source_app": "" if outside else app,
        "source_version": "" if outside else source_version,
        "destination_service": fqdn,
        "destination_workload": "unknown" if version == "unknown" else f"{service}-{version}",
        "destination_namespace": namespace,
        "destination_version": version,
        "response_code": code,
        "response_flags": flags,
    }
    out = []
    if not outside:
        out.append(RequestRecord(reporter=Reporter.SOURCE, **common))  # type: ignore[arg-type]
    if version != "unknown" and not host:
        policy = ConnectionSecurityPolicy.MUTUAL_TLS if mtls else ConnectionSecurityPolicy.NONE
        out.append(
            RequestRecord(
                reporter=Reporter.DESTINATION,
                connection_security_policy=policy,
                **common,  # type: ignore[arg-type]
            )
        )
    return out


def many(n: int, *args: object, **kwargs: object) -> list[RequestRecord]:
    """``n`` requests alike, a millisecond apart."""
    out: list[RequestRecord] = []
    for i in range(n):
        out += request(*args, at=i / 1000, **kwargs)  # type: ignore[arg-type]
    return out


def generated_mesh(services: int, seed: int = 1, tiers: int = 5) -> list[RequestRecord]:
    """A mesh of ``services`` services (two versions each) in ``tiers`` tiers, the way apps are
    built (edge, APIs, domain services, data): the load generator calls the ingress gateway,
    which calls the first tier; every service calls one to three services of the next tier
    (now and then one two tiers down); a fifth of the calls fail with 503."""
    rng = random.Random(seed)
    names = [f"svc-{i:02d}" for i in range(services)]
    size = -(-services // tiers)
    layers = [names[i : i + size] for i in range(0, services, size)]
    records = many(20, "outside", "", "ingress", "")
    for name in layers[0]:
        records += many(10, "ingress", "", name, "v1")
    for t, layer in enumerate(layers[:-1]):
        below = layers[t + 1] + (layers[t + 2][:1] if t + 2 < len(layers) else [])
        for name in layer:
            for callee in rng.sample(below, k=min(len(below), rng.randint(1, 3))):
                for version in ("v1", "v2"):
                    code = 503 if rng.random() < 0.2 else 200
                    records += many(rng.randint(1, 6), name, "v1", callee, version, code=code)
    return records
