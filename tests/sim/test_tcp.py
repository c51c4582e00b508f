"""TCP connections on the simulator (sim/tcp.py): tcp_proxy on both sidecars, executed from the
translated listeners, with Istio's TCP records and metrics."""

from __future__ import annotations

import pytest

from mesh.lesson import BreakAction, TrafficSpec
from mesh.metrics import TCP_METRICS, prometheus_text, tcp_totals
from mesh.records import ConnectionSecurityPolicy, RequestRecord
from mesh.topology import MeshConfig
from sim.traffic import TrafficDriver, run_until_quiet
from sim.world import World
from tests.sim.harness import by, dst, make_world, src

DB = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: t}
spec:
  selector: {app: db}
  ports: [{name: tcp-db, port: 5432, targetPort: 5432}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: db, namespace: t}
"""


def db_deployment(version: str, replicas: int = 1) -> str:
    return f"""
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: db-{version}, namespace: t, labels: {{app: db, version: {version}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: db, version: {version}}}}}
  template:
    metadata: {{labels: {{app: db, version: {version}}}}}
    spec:
      serviceAccountName: db
      containers: [{{name: db, image: test/db, ports: [{{containerPort: 5432}}]}}]
"""


DB_SPLIT = """
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
  - route:
    - {destination: {host: db, subset: primary}, weight: 80}
    - {destination: {host: db, subset: replica}, weight: 20}
"""


def sidecar(mode: str) -> str:
    """The client namespace imports only its own services, with this outbound policy."""
    return f"""
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: t}}
spec:
  egress: [{{hosts: ["./*"]}}]
  outboundTrafficPolicy: {{mode: {mode}}}
"""


def connect(
    world: World,
    to: str,
    *,
    count: int = 1,
    source: str = "client",
    send: int = 100,
    receive: int = 2000,
    hold: float = 0.5,
) -> list[RequestRecord]:
    """Open ``count`` TCP connections and return every record."""
    spec = TrafficSpec(
        from_=source,
        to=to,
        protocol="tcp",
        count=count,
        rate_rps=50.0,
        send_bytes=send,
        receive_bytes=receive,
        hold_s=hold,
    )
    driver = TrafficDriver(world, spec)
    driver.start()
    run_until_quiet(world.env, driver, hard_limit=world.env.now + 600.0)
    return list(world.records)


# -- §21 item 20 and its ALLOW_ANY twin ------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "cluster", "flags", "upstream_host", "bytes_sent"),
    [
        ("REGISTRY_ONLY", "BlackHoleCluster", ("UH",), "", 0),
        ("ALLOW_ANY", "PassthroughCluster", (), "203.0.113.9:443", 2000),
    ],
)
def test_item20_tcp_to_an_unknown_ip_443_follows_the_outbound_traffic_policy(
    mode: str, cluster: str, flags: tuple[str, ...], upstream_host: str, bytes_sent: int
) -> None:
    world = make_world(DB + db_deployment("primary") + sidecar(mode))
    records = connect(world, "203.0.113.9:443", count=3)
    assert [
        (r.destination_service_name, r.upstream_cluster, r.response_flags, r.upstream_host)
        for r in records
    ] == [(cluster, cluster, flags, upstream_host)] * 3
    assert {(r.response_code, r.method, r.path, r.request_protocol) for r in records} == {
        (0, "", "", "tcp")
    }
    assert {r.bytes_sent for r in records} == {bytes_sent}
    if flags:  # accepted, then closed at once: no time for the app's 0.5 s hold
        assert max(r.duration_ms for r in records) < 1.0
    else:
        assert min(r.duration_ms for r in records) >= 500.0


def test_item20_unknown_ip_on_a_port_without_a_listener_reaches_virtual_outbound() -> None:
    # no Sidecar scoping: port 8443 has no outbound listener, so virtualOutbound's catch-all decides
    world = make_world(config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    records = connect(world, "203.0.113.9:8443")
    assert [(r.upstream_cluster, r.response_flags) for r in records] == [
        ("BlackHoleCluster", ("UH",))
    ]


def test_item20_unknown_ip_443_without_sidecar_scoping_goes_to_the_blackhole() -> None:
    world = make_world(config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    records = connect(world, "203.0.113.9:443")
    assert [(r.upstream_cluster, r.response_flags) for r in records] == [
        ("BlackHoleCluster", ("UH",))
    ]


# -- a mesh TCP service --------------------------------------------------------------------


def test_tcp_route_weights_split_connections_between_subsets() -> None:
    world = make_world(DB + db_deployment("primary") + db_deployment("replica") + DB_SPLIT)
    records = src(connect(world, "db", count=400, hold=0.01))
    shares = by(records, "destination_version")
    assert shares["primary"] + shares["replica"] == 400
    assert 0.74 < shares["primary"] / 400 < 0.86
    assert {
        r.upstream_cluster.split("|")[2] for r in records if r.destination_version == "replica"
    } == {"replica"}
    assert {r.response_flags for r in records} == {()}


def test_a_tcp_connection_is_logged_by_both_sidecars_with_its_bytes_and_lifetime() -> None:
    world = make_world(DB + db_deployment("primary"))
    records = connect(world, "db", send=300, receive=7000, hold=0.25)
    (client,) = src(records)
    (server,) = dst(records)
    assert (client.bytes_received, client.bytes_sent) == (300, 7000)
    assert (server.bytes_received, server.bytes_sent) == (300, 7000)
    assert client.upstream_cluster == "outbound|5432||db.t.svc.cluster.local"
    assert server.upstream_cluster == "inbound|5432||"
    assert 250.0 <= server.duration_ms < client.duration_ms < 260.0
    # auto mTLS: the server knows its peer through the TCP metadata exchange
    assert server.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
    assert (server.source_workload, server.destination_workload) == ("client-v1", "db-primary")
    assert client.connection_security_policy is ConnectionSecurityPolicy.UNKNOWN


def test_plaintext_tcp_from_outside_has_an_unknown_peer() -> None:
    world = make_world(DB + db_deployment("primary"))
    records = connect(world, "db", source="outside")
    assert [
        (r.reporter.value, r.source_workload, r.connection_security_policy.value) for r in records
    ] == [("destination", "unknown", "none")]


def test_a_dead_pod_fails_the_connection_with_uf() -> None:
    world = make_world(DB + db_deployment("primary"))
    world.apply_break(BreakAction(workload="db-primary", kill=1))
    records = connect(world, "db", count=3)
    assert [(r.reporter.value, r.response_flags) for r in records] == [
        ("source", ("UF", "URX"))
    ] * 3
    assert {r.bytes_sent for r in records} == {0}


def test_an_empty_subset_closes_the_connection_with_uh() -> None:
    world = make_world(DB + db_deployment("primary") + DB_SPLIT)  # no replica pods
    records = src(connect(world, "db", count=200, hold=0.0))
    flagged = [r for r in records if r.response_flags]
    assert {r.response_flags for r in flagged} == {("UH",)}
    assert {r.upstream_cluster for r in flagged} == {"outbound|5432|replica|db.t.svc.cluster.local"}
    assert 20 <= len(flagged) <= 60


def test_max_connections_overflows_with_uo() -> None:
    limit = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: t}
spec:
  host: db
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
"""
    world = make_world(DB + db_deployment("primary") + limit)
    records = src(connect(world, "db", count=20, hold=1.0))
    assert by(records, "response_flags")[("UO",)] >= 10
    assert by(records, "response_flags")[()] >= 1


# -- security on a TCP port ----------------------------------------------------------------

STRICT = """
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: t}
spec:
  mtls: {mode: STRICT}
"""


def test_strict_closes_plaintext_tcp_from_outside_without_a_record() -> None:
    world = make_world(DB + db_deployment("primary") + STRICT)
    assert connect(world, "db", source="outside", count=3) == []


@pytest.mark.parametrize(
    ("policy", "denied"),
    [
        (
            "action: DENY\n  rules: [{from: [{source: {principals: ['cluster.local/ns/t/sa/client']}}]}]",
            True,
        ),
        (
            "action: DENY\n  rules: [{from: [{source: {principals: ['cluster.local/ns/t/sa/other']}}]}]",
            False,
        ),
        # ALLOW with only an HTTP attribute: the rule is skipped on a TCP chain -> deny all
        ("action: ALLOW\n  rules: [{to: [{operation: {methods: [GET]}}]}]", True),
        # DENY with only an HTTP attribute: the condition is dropped -> deny all
        ("action: DENY\n  rules: [{to: [{operation: {paths: [/admin]}}]}]", True),
        ("action: ALLOW\n  rules: [{to: [{operation: {ports: ['5432']}}]}]", False),
    ],
)
def test_network_rbac_on_a_tcp_port_closes_denied_connections(policy: str, denied: bool) -> None:
    authz = f"""
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: db, namespace: t}}
spec:
  selector: {{matchLabels: {{app: db}}}}
  {policy}
"""
    world = make_world(DB + db_deployment("primary") + authz)
    records = connect(world, "db", count=2, receive=500)
    client, server = src(records), dst(records)
    assert len(server) == 2
    if denied:
        assert {r.bytes_sent for r in client + server} == {0}
        assert all(
            r.response_code_details.startswith("rbac_access_denied_matched_policy[") for r in server
        )
        assert world.rbac_denied == {"db-primary-0/inbound|5432||.rbac.denied": 2}
        assert {r.response_code_details for r in client} == {""}
    else:
        assert {r.bytes_sent for r in client + server} == {500}
        assert world.rbac_denied == {}
    assert {r.response_flags for r in server} == {()}  # a network RBAC denial sets no flag


# -- metrics -------------------------------------------------------------------------------


def test_tcp_connections_feed_istios_tcp_metrics_not_requests_total() -> None:
    world = make_world(DB + db_deployment("primary"))
    records = connect(world, "db", count=4, send=10, receive=1000, hold=0.01)
    text = prometheus_text(records)
    assert [name for name, _ in TCP_METRICS] == [
        "istio_tcp_connections_opened_total",
        "istio_tcp_connections_closed_total",
        "istio_tcp_sent_bytes_total",
        "istio_tcp_received_bytes_total",
    ]
    assert "istio_requests_total{" not in text
    sent = [line for line in text.splitlines() if line.startswith("istio_tcp_sent_bytes_total{")]
    assert len(sent) == 2  # one label set per reporter
    assert all('request_protocol="tcp"' in line and 'response_code="0"' in line for line in sent)
    assert all(line.endswith(" 4000") for line in sent)
    totals = tcp_totals(src(records))
    assert list(totals.values()) == [(4, 4, 4000, 40)]
    assert all(r.ok for r in records)


def test_a_service_entry_address_makes_registry_only_tcp_reach_its_external_endpoint() -> None:
    entry = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: psp, namespace: t}
spec:
  hosts: [psp.example.com]
  addresses: [203.0.113.9]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 203.0.113.9}]
"""
    world = make_world(DB + db_deployment("primary") + sidecar("REGISTRY_ONLY") + entry)
    records = connect(world, "203.0.113.9:443", count=2)
    assert [
        (r.destination_service, r.upstream_cluster, r.upstream_host, r.response_flags, r.bytes_sent)
        for r in records
    ] == [
        (
            "psp.example.com",
            "outbound|443||psp.example.com",
            "203.0.113.9:443",
            (),
            2000,
        )
    ] * 2


# -- Service VIPs: one <VIP>_<port> listener per TCP service ---------------------------------

LEDGER = """
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: t}
spec:
  selector: {app: ledger}
  ports: [{name: tcp-db, port: 5432, targetPort: 5432}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger-v1, namespace: t, labels: {app: ledger, version: v1}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger, version: v1}}
    spec:
      containers: [{name: ledger, image: test/db, ports: [{containerPort: 5432}]}]
"""


def test_two_tcp_services_on_one_port_are_each_reached_at_their_own_vip() -> None:
    world = make_world(DB + db_deployment("primary") + LEDGER)
    db = src(connect(world, "db", count=3, hold=0.01))
    ledger = [r for r in src(connect(world, "ledger", count=3, hold=0.01)) if r not in db]
    assert {(r.destination_workload, r.upstream_cluster) for r in db} == {
        ("db-primary", "outbound|5432||db.t.svc.cluster.local")
    }
    assert {(r.destination_workload, r.upstream_cluster) for r in ledger} == {
        ("ledger-v1", "outbound|5432||ledger.t.svc.cluster.local")
    }
    assert {r.response_flags for r in db + ledger} == {()}


def test_a_connection_to_a_service_dials_its_vip_and_takes_the_vip_listener() -> None:
    world = make_world(DB + db_deployment("primary") + LEDGER)
    service = world.topology.service("ledger.t.svc.cluster.local")
    assert service is not None and service.vip.startswith("10.96.")
    client = next(p for p in world.pods.values() if p.proxy is not None and p.sidecar)
    tables = client.proxy.tables
    listener = tables.outbound_listener(service.vip, 5432)
    assert listener is not None and listener.name == f"{service.vip}_5432"
    assert tables.outbound_listener("10.1.2.3", 5432) is None  # no wildcard TCP listener


def test_a_headless_tcp_service_is_dialled_at_a_pod_ip_through_its_endpoint_listener() -> None:
    headless = DB.replace("selector: {app: db}", "clusterIP: None\n  selector: {app: db}")
    world = make_world(headless + db_deployment("primary", replicas=2))
    records = src(connect(world, "db", count=6, hold=0.01))
    assert {r.upstream_cluster for r in records} == {"outbound|5432||db.t.svc.cluster.local"}
    assert {r.destination_workload for r in records} == {"db-primary"}
    assert {r.response_flags for r in records} == {()}


MONGO_CIDR = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mongo, namespace: t}
spec:
  hosts: [mongo.example.com]
  addresses: [192.0.2.0/24]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 27017, name: tcp-mongo, protocol: TCP}]
"""


@pytest.mark.parametrize(
    ("mode", "outside"),
    [("ALLOW_ANY", "PassthroughCluster"), ("REGISTRY_ONLY", "BlackHoleCluster")],
)
def test_a_service_entry_cidr_takes_its_range_and_the_default_chain_the_rest(
    mode: str, outside: str
) -> None:
    world = make_world(
        DB + db_deployment("primary") + MONGO_CIDR, config=MeshConfig(outbound_traffic_policy=mode)
    )
    inside = connect(world, "192.0.2.7:27017", hold=0.01)
    assert [r.upstream_cluster for r in inside] == ["outbound|27017||mongo.example.com"]
    records = connect(world, "198.51.100.1:27017", hold=0.01)
    assert [r.upstream_cluster for r in records if r not in inside] == [outside]
