"""The pure parts of the local multi-cluster mesh: a proxy's endpoints moved onto its cluster's
link ports, and a client record through an east-west gateway naming the server that answered
(what Istio's peer metadata exchange gives the client's telemetry)."""

from __future__ import annotations

from cluster.local.multicluster import name_remote_servers, rewrite_endpoints, tag_cluster
from mesh.envoy.accesslog import record_from_access_log
from mesh.envoy_api.names import ClusterName, Direction, parse_sni_name
from mesh.records import Reporter, RequestRecord


def _cla(*ports: int) -> dict[str, object]:
    return {
        "cluster_name": "outbound|5000||helloworld.sample.svc.cluster.local",
        "endpoints": [
            {
                "locality": {"region": "us-west"},
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}
                        },
                        "load_balancing_weight": 2,
                    }
                    for p in ports
                ],
            }
        ],
    }


def _ports(cla: dict[str, object]) -> list[int]:
    groups = cla["endpoints"]
    assert isinstance(groups, list)
    return [
        lb["endpoint"]["address"]["socket_address"]["port_value"]
        for g in groups
        for lb in g["lb_endpoints"]
    ]


def test_only_the_other_clusters_ports_move_onto_the_link() -> None:
    original = _cla(15443, 8080)
    (moved,) = rewrite_endpoints([original], {15443: 30001})
    assert _ports(moved) == [30001, 8080]
    assert _ports(original) == [15443, 8080]  # the translator's config is left as it was
    groups = moved["endpoints"]
    assert isinstance(groups, list)
    assert groups[0]["lb_endpoints"][0]["load_balancing_weight"] == 2
    assert groups[0]["locality"] == {"region": "us-west"}


def _record(reporter: Reporter, request_id: str, workload: str, version: str) -> RequestRecord:
    return RequestRecord(
        start_time=0.0,
        duration_ms=1.0,
        reporter=reporter,
        source_workload="curl",
        source_namespace="sample",
        source_principal="cluster.local/ns/sample/sa/curl",
        destination_service="helloworld.sample.svc.cluster.local",
        destination_workload=workload,
        destination_namespace="sample" if workload != "unknown" else "unknown",
        destination_version=version,
        request_id=request_id,
    )


def test_a_client_record_through_the_gateway_names_the_server_that_answered() -> None:
    records = [
        _record(Reporter.SOURCE, "a", "unknown", "unknown"),
        _record(Reporter.DESTINATION, "a", "helloworld-v2", "v2"),
        _record(Reporter.SOURCE, "b", "helloworld-v1", "v1"),
        _record(Reporter.DESTINATION, "b", "helloworld-v1", "v1"),
        _record(Reporter.SOURCE, "c", "unknown", "unknown"),  # nobody answered: stays unknown
    ]
    named = name_remote_servers(records)
    assert [(r.destination_workload, r.destination_version) for r in named] == [
        ("helloworld-v2", "v2"),
        ("helloworld-v2", "v2"),
        ("helloworld-v1", "v1"),
        ("helloworld-v1", "v1"),
        ("unknown", "unknown"),
    ]


def test_each_record_says_which_cluster_each_end_is_in() -> None:
    """Each proxy tags its own side (the log it wrote); the exchange fills in the other."""
    client = tag_cluster([_record(Reporter.SOURCE, "a", "unknown", "unknown")], "cluster2")
    server = tag_cluster([_record(Reporter.DESTINATION, "a", "helloworld-v1", "v1")], "cluster1")
    named = name_remote_servers([*client, *server])
    assert [(r.source_cluster, r.destination_cluster) for r in named] == [
        ("cluster2", "cluster1"),
        ("cluster2", "cluster1"),
    ]


def test_the_east_west_gateways_tcp_entry_names_the_service_of_its_sni_cluster() -> None:
    """The gateway's SNI-DNAT cluster ``outbound_.PORT_.SUBSET_.HOST`` belongs to one service,
    whose host istiod writes in the cluster's ``istio`` metadata, where Istio's stats read
    ``destination_service``: the record names that host (the edge is gateway -> helloworld,
    as in the simulator), not the cluster."""
    sni = "outbound_.5000_.v2_.helloworld.sample.svc.cluster.local"
    assert parse_sni_name(sni) == ClusterName(
        Direction.OUTBOUND, 5000, "v2", "helloworld.sample.svc.cluster.local"
    )
    assert parse_sni_name("outbound|5000||helloworld.sample.svc.cluster.local") is None
    assert parse_sni_name("inbound_.5000_._.x") is None
    entry = {
        "reporter": "source",
        "request_protocol": "tcp",
        "start_time": "2026-12-05T05:00:00.000Z",
        "duration": 222,
        "source_workload": "istio-eastwestgateway",
        "source_namespace": "istio-system",
        "destination_workload": "helloworld-v2;sample;helloworld;v2;Kubernetes",
        "upstream_cluster": "outbound_.5000_._.helloworld.sample.svc.cluster.local",
        "upstream_host": "127.0.0.1:28663",
    }
    record = record_from_access_log(entry)
    assert record.destination_service == "helloworld.sample.svc.cluster.local"
    assert (record.destination_workload, record.destination_version) == ("helloworld-v2", "v2")
