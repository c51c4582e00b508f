"""VirtualService ``tcp`` / ``tls`` matches with ``sourceLabels`` and ``destinationSubnets``.

istiod decides ``sourceLabels`` (and ``sourceNamespace``) when it builds each proxy's config: a
rule whose labels the proxy lacks is not there at all, so the client sidecar (``app: client``)
and another workload's sidecar (``app: other``) get different chains for the same service.
``destinationSubnets`` is not modelled: reported as MPY2001 at the field, and the match yields
no chain (the next rule applies)."""

from __future__ import annotations

import pytest

from mesh.analyze import analyze
from mesh.lesson import TrafficSpec
from mesh.source import load_text
from sim.accesslog import TcpOutcome
from sim.traffic import TrafficDriver
from tests.sim.harness import make_world
from tests.sim.test_tcp import DB, connect, db_deployment
from tests.sim.test_tls_sni import ADDRESS, EGRESS

DB_BY_SOURCE = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: t}
spec:
  host: db
  subsets:
  - {name: primary, labels: {version: primary}}
  - {name: replica, labels: {version: replica}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: t}
spec:
  hosts: [db]
  tcp:
  - match: [{sourceLabels: {app: client}}]
    route: [{destination: {host: db, subset: replica}}]
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: db, subset: replica}}]
  - route: [{destination: {host: db, subset: primary}}]
"""
DB_MESH = DB + db_deployment("primary") + db_deployment("replica") + DB_BY_SOURCE


@pytest.mark.parametrize(
    ("source", "cluster"),
    [
        # the rule with sourceLabels exists only on the client's sidecar
        ("client", "outbound|5432|replica|db.t.svc.cluster.local"),
        # elsewhere the destinationSubnets rule is not modelled: the catch-all applies
        ("other", "outbound|5432|primary|db.t.svc.cluster.local"),
    ],
)
def test_tcp_source_labels_select_the_rule_per_client_sidecar(source: str, cluster: str) -> None:
    world = make_world(DB_MESH)
    records = connect(world, "db", source=source, count=4)
    sent = [r for r in records if r.reporter.value == "source"]
    assert len(sent) == 4
    assert {r.upstream_cluster for r in sent} == {cluster}


def test_destination_subnets_are_reported_as_not_modelled_at_the_field() -> None:
    loaded = load_text(DB_BY_SOURCE, "vs.yaml", default_namespace="t")
    found = [d for d in analyze(loaded.resources) if d.code == "MPY2001"]
    assert [(d.line, d.path) for d in found] == [(20, "spec.tcp[1].match[0].destinationSubnets")]


TLS_BY_SOURCE = EGRESS.replace(
    "  - match: [{port: 443, sniHosts: [legacy.pay.example]}]",
    "  - match: [{port: 443, sniHosts: [legacy.pay.example], sourceLabels: {app: client}}]",
)


@pytest.mark.parametrize(
    ("source", "cluster"),
    [
        # the client's sidecar has the tls rule: SNI legacy.pay.example goes to eu.pay.example
        ("client", "outbound|443||eu.pay.example"),
        # another sidecar does not: legacy.pay.example's own chain
        ("other", "outbound|443||legacy.pay.example"),
    ],
)
def test_tls_source_labels_select_the_sni_chain_per_client_sidecar(
    source: str, cluster: str
) -> None:
    assert TLS_BY_SOURCE != EGRESS
    world = make_world(TLS_BY_SOURCE)
    spec = TrafficSpec(
        from_=source, to=ADDRESS, protocol="tcp", count=1, send_bytes=500, receive_bytes=4000,
        sni="legacy.pay.example",
    )  # fmt: skip
    driver = TrafficDriver(world, spec)
    proc = world.env.process(driver.open(driver.connection()))
    world.env.run(until=proc)
    assert isinstance(proc.value, TcpOutcome)
    assert proc.value.upstream_cluster == cluster
