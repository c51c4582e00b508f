"""Reference §21 "Routing" (items 1-19): the observable outcome of each, on the simulator."""

from __future__ import annotations

import pytest

from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model import FrozenMap
from mesh.topology import MeshConfig
from sim.messages import Response, Trace
from sim.traffic import TrafficDriver
from sim.world import World
from tests.sim.harness import by, drive, dst, make_world, src

DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v3, labels: {version: v3}}
    - {name: v9, labels: {version: v9}}
"""


def vs(http: str, name: str = "reviews", host: str = "reviews") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  http:
{http}
"""


def test_item1_no_vs_least_request_avoids_the_slow_pod() -> None:
    world = make_world()
    from mesh.lesson import BreakAction

    world.apply_break(BreakAction(workload="reviews-v3", latency_ms=50))
    records = src(drive(world, rate=400, duration=5))
    shares = by(records, "destination_workload")
    total = sum(shares.values())
    assert shares["reviews-v3"] / total < 0.25  # markedly fewer than 1/3
    assert {r.route_name for r in records} == {"default"}
    assert {r.upstream_cluster for r in records} == {"outbound|9080||reviews.t.svc.cluster.local"}


def test_item2_header_match_sends_jason_to_v2_and_others_to_v1() -> None:
    rules = """
    - match: [{headers: {end-user: {exact: jason}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
"""
    world = make_world(DR + vs(rules))
    records = src(
        drive(
            world,
            requests=[("GET", "/r", {"end-user": "jason"}), ("GET", "/r")],
            count=200,
            rate=100,
        )
    )
    jason = [r for r in records if r.destination_version == "v2"]
    others = [r for r in records if r.destination_version == "v1"]
    assert len(jason) + len(others) == 200
    assert 60 < len(jason) < 140
    # only requests carrying the header reach v2: check via the subset of the cluster
    assert {r.upstream_cluster.split("|")[2] for r in jason} == {"v2"}


def test_item3_no_catch_all_gives_404_nr_at_the_client_only() -> None:
    world = make_world(
        vs("""
    - match: [{uri: {prefix: /api}}]
      route: [{destination: {host: reviews}}]
""")
    )
    records = drive(world, requests=[("GET", "/other")], count=20, rate=50)
    assert {(r.response_code, r.response_flags) for r in src(records)} == {(404, ("NR",))}
    assert dst(records) == []
    # no cluster: Istio's sidecar stats (host header fallback on) name the Host as sent
    assert {(r.destination_service, r.authority) for r in src(records)} == {
        ("reviews:9080", "reviews:9080")
    }


def test_item4_weights_need_not_sum_to_100_and_weight_0_gets_nothing() -> None:
    rules = """
    - route:
        - {destination: {host: reviews, subset: v1}, weight: 1}
        - {destination: {host: reviews, subset: v2}, weight: 3}
        - {destination: {host: reviews, subset: v3}, weight: 0}
"""
    world = make_world(DR + vs(rules))
    shares = by(src(drive(world, count=4000, rate=2000)), "destination_version")
    assert 0.72 < shares["v2"] / 4000 < 0.78
    assert shares["v3"] == 0


def test_item5_and_7_unknown_subset_or_host_gives_503_nc() -> None:
    world = make_world(
        DR
        + vs("""
    - match: [{uri: {prefix: /a}}]
      route: [{destination: {host: reviews, subset: v7}}]
    - route: [{destination: {host: nowhere.example.svc.cluster.local}}]
""")
    )
    records = src(drive(world, requests=[("GET", "/a"), ("GET", "/b")], count=40, rate=50))
    assert {(r.response_code, r.response_flags) for r in records} == {(503, ("NC",))}


def test_item6_subset_without_pods_gives_503_uh() -> None:
    world = make_world(DR + vs("    - route: [{destination: {host: reviews, subset: v9}}]"))
    records = src(drive(world, count=10, rate=50))
    assert {(r.response_code, r.response_flags, r.response_code_details) for r in records} == {
        (503, ("UH",), "no_healthy_upstream")
    }


def test_item8_second_vs_for_the_same_host_is_ignored_on_sidecars() -> None:
    first = vs("    - route: [{destination: {host: reviews, subset: v1}}]", name="a-first")
    second = vs("    - route: [{destination: {host: reviews, subset: v2}}]", name="b-second")
    world = make_world(DR + first + second)
    assert set(by(src(drive(world, count=30, rate=50)), "destination_version")) == {"v1"}


@pytest.mark.parametrize(
    ("match", "path", "expected_version"),
    [
        ("{uri: {exact: /Login}, ignoreUriCase: true}", "/login", "v2"),
        ("{uri: {regex: /Login}, ignoreUriCase: true}", "/login", "v1"),
        ("{queryParams: {debug: {exact: ''}}}", "/r?debug", "v2"),
        ("{queryParams: {debug: {exact: ''}}}", "/r?debug=", "v2"),
        ("{queryParams: {debug: {exact: ''}}}", "/r?debug=1", "v1"),
    ],
)
def test_items9_and_11_uri_case_and_query_matching(
    match: str, path: str, expected_version: str
) -> None:
    rules = f"""
    - match: [{match}]
      route: [{{destination: {{host: reviews, subset: v2}}}}]
    - route: [{{destination: {{host: reviews, subset: v1}}}}]
"""
    world = make_world(DR + vs(rules))
    records = src(drive(world, requests=[("GET", path)], count=5, rate=50))
    assert {r.destination_version for r in records} == {expected_version}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"x-canary": ""}, "v2"), ({"x-canary": "yes"}, "v2"), ({}, "v1")],
)
def test_item10_presence_match(headers: dict[str, str], expected: str) -> None:
    rules = """
    - match: [{headers: {x-canary: {}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
"""
    world = make_world(DR + vs(rules))
    records = src(drive(world, requests=[("GET", "/r", headers)], count=5, rate=50))
    assert {r.destination_version for r in records} == {expected}


@pytest.mark.parametrize(
    ("headers", "expected"), [({}, "v2"), ({"x-canary": "2"}, "v2"), ({"x-canary": "1"}, "v1")]
)
def test_item10_without_headers_matches_absent_or_different(
    headers: dict[str, str], expected: str
) -> None:
    rules = """
    - match: [{withoutHeaders: {x-canary: {exact: "1"}}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
"""
    world = make_world(DR + vs(rules))
    records = src(drive(world, requests=[("GET", "/r", headers)], count=5, rate=50))
    assert {r.destination_version for r in records} == {expected}


def test_item12_rule_after_catch_all_is_never_used() -> None:
    rules = """
    - route: [{destination: {host: reviews, subset: v1}}]
    - match: [{uri: {prefix: /r}}]
      route: [{destination: {host: reviews, subset: v2}}]
"""
    world = make_world(DR + vs(rules))
    assert set(by(src(drive(world, count=20, rate=50)), "destination_version")) == {"v1"}


def test_item13_source_labels_select_by_client_proxy() -> None:
    rules = """
    - match: [{sourceLabels: {app: client}}]
      route: [{destination: {host: reviews, subset: v2}}]
    - route: [{destination: {host: reviews, subset: v1}}]
"""
    world = make_world(DR + vs(rules))
    from_client = src(drive(world, count=10, rate=50))
    from_other = [
        r for r in src(drive(world, source="other", count=10, rate=50)) if r.source_app == "other"
    ]
    assert {r.destination_version for r in from_client} == {"v2"}
    assert {r.destination_version for r in from_other} == {"v1"}


def test_item14_redirect_is_answered_by_the_client_proxy() -> None:
    world = make_world(
        vs("""
    - match: [{uri: {prefix: /old}}]
      redirect: {uri: /v2}
    - route: [{destination: {host: reviews}}]
""")
    )
    records = drive(world, requests=[("GET", "/old")], count=10, rate=50)
    assert {r.response_code for r in src(records)} == {301}
    assert dst(records) == []


def test_item15_rewrite_changes_the_upstream_path_not_the_logged_one() -> None:
    world = make_world(
        vs("""
    - match: [{uri: {prefix: /old}}]
      rewrite: {uri: /new}
      route: [{destination: {host: reviews}}]
""")
    )
    records = drive(world, requests=[("GET", "/old/rest")], count=5, rate=50)
    assert {r.path for r in src(records)} == {"/old/rest"}
    assert {r.path for r in dst(records)} == {"/new/rest"}


def _one_traced(world: World, headers: dict[str, str]) -> tuple[Response, list[str]]:
    """One GET /r from the client with a trace: the response and the trace lines."""
    driver = TrafficDriver(world, TrafficSpec(from_="client", to="reviews", count=1))
    trace = Trace()
    req = driver.request(RequestSpec(method="GET", path="/r", headers=FrozenMap(headers)), trace)
    proc = world.env.process(driver.send(req))
    world.env.run(until=proc)
    assert isinstance(proc.value, Response)
    return proc.value, [text for _, _, text in trace.lines]


HEADER_OPS = """
    - route: [{destination: {host: reviews, subset: v1}}]
      headers:
        request: {set: {x-a: "1"}, add: {x-c: "2"}, remove: [x-gone]}
        response: {remove: [x-b], add: {x-d: "4"}}
"""


def test_item16_header_operations_reach_the_app_and_the_client() -> None:
    world = make_world(DR + vs(HEADER_OPS))
    for pod in world.pods.values():
        pod.response_headers = {"x-b": "secret", "x-e": "kept"}
    resp, lines = _one_traced(world, {"x-a": "0", "x-c": "1", "x-gone": "y"})
    assert resp.status == 200
    received = next(t for t in lines if t.startswith("the app receives"))
    assert "x-a: 1," in received  # set overwrites the client's 0
    assert "x-c: 1,2" in received  # add appends to the client's value
    assert "x-gone" not in received
    assert resp.headers == {"x-d": "4", "x-e": "kept"}  # x-b stripped before the client app


def test_item16_without_header_operations_the_app_headers_pass_unchanged() -> None:
    world = make_world(DR + vs("    - route: [{destination: {host: reviews, subset: v1}}]"))
    for pod in world.pods.values():
        pod.response_headers = {"x-b": "secret"}
    resp, lines = _one_traced(world, {"x-a": "0"})
    assert resp.headers == {"x-b": "secret"}
    assert any(t.startswith("the app receives") and "x-a: 0" in t for t in lines)


def test_item17_mirror_copies_every_request_and_the_client_never_waits() -> None:
    shadow_dr = DR
    rules = """
    - route: [{destination: {host: reviews, subset: v1}}]
      mirror: {host: shadow}
"""
    world = make_world(shadow_dr + vs(rules))
    records = drive(world, count=50, rate=50)
    assert sum(1 for r in dst(records) if r.destination_workload == "shadow-v1") == 50
    assert {r.destination_workload for r in src(records)} == {"reviews-v1"}


@pytest.mark.parametrize(("percent", "low", "high"), [(0, 0, 0), (25, 0.18, 0.32)])
def test_item17_mirror_percentage(percent: int, low: float, high: float) -> None:
    rules = f"""
    - route: [{{destination: {{host: reviews, subset: v1}}}}]
      mirror: {{host: shadow}}
      mirrorPercentage: {{value: {percent}}}
"""
    world = make_world(DR + vs(rules))
    records = drive(world, count=400, rate=400)
    copies = sum(1 for r in dst(records) if r.destination_workload == "shadow-v1")
    assert low * 400 <= copies <= high * 400


def test_registry_only_http_to_a_service_entry_host_reaches_its_external_server() -> None:
    # the external server is outside the simulated mesh: it answers 200 (as a passed-through
    # request's server does), through the ServiceEntry's own cluster (on the port the test app's
    # clients call, so the request lands on that port's route configuration)
    entry = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 203.0.113.7}]
"""
    world = make_world(entry, config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    records = src(
        drive(world, requests=[("GET", "/v1/x", {"host": "api.example.com"})], count=3, rate=50)
    )
    assert {(r.response_code, r.upstream_cluster, r.upstream_host) for r in records} == {
        (200, "outbound|9080||api.example.com", "203.0.113.7:9080")
    }


def test_item19_registry_only_unknown_host_gets_502_from_the_client_proxy() -> None:
    world = make_world(config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    records = src(
        drive(
            world, to="reviews", requests=[("GET", "/r", {"host": "example.com"})], count=5, rate=50
        )
    )
    assert {r.response_code for r in records} == {502}


def test_item18_allow_any_unknown_host_is_passed_through_unmodified() -> None:
    world = make_world(vs("    - route: [{destination: {host: reviews, subset: v1}}]") + DR)
    records = src(drive(world, requests=[("GET", "/r", {"host": "example.com"})], count=5, rate=50))
    assert {(r.response_code, r.destination_service_name, r.attempts) for r in records} == {
        (200, "PassthroughCluster", 1)
    }


def test_item19_block_all_is_labelled_blackhole() -> None:
    world = make_world(config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    records = src(drive(world, requests=[("GET", "/r", {"host": "example.com"})], count=3, rate=50))
    assert {r.destination_service_name for r in records} == {"BlackHoleCluster"}


def test_item20_registry_only_tcp_to_an_unknown_ip_443_goes_to_the_blackhole() -> None:
    # a TCP/TLS connection to 203.0.113.9:443: no outbound listener takes that address (the
    # Sidecar imports only the namespace's own services), so virtualOutbound's catch-all chain
    # tcp_proxies it to BlackHoleCluster, which has no endpoints: accepted, then closed (UH)
    scope = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: t}
spec:
  egress: [{hosts: ["./*"]}]
"""
    world = make_world(scope, config=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))
    spec = TrafficSpec(
        from_="client", to="203.0.113.9:443", protocol="tcp", count=1, send_bytes=517
    )
    driver = TrafficDriver(world, spec)
    driver.start()
    world.env.run(until=5.0)
    records = world.records
    assert [
        (r.destination_service_name, r.upstream_cluster, r.response_flags, r.request_protocol)
        for r in records
    ] == [("BlackHoleCluster", "BlackHoleCluster", ("UH",), "tcp")]
    assert (records[0].response_code, records[0].bytes_sent) == (0, 0)
