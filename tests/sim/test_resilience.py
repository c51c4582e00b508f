"""Reference §21 "Timeouts & retries" (21-28) and "Fault injection" (30-34) on the simulator."""

from __future__ import annotations

import pytest

from mesh.lesson import BreakAction
from mesh.records import RequestRecord
from mesh.topology import MeshConfig
from sim.matchers import split_path
from tests.sim.harness import by, drive, dst, make_world, src


def vs(http: str) -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
{http}
"""


def only(workload: str) -> BreakAction:
    return BreakAction(workload=workload, error_rate=1.0)


@pytest.mark.parametrize(("version", "server_attempts"), [("1.28", 1), ("1.23", 3)])
def test_item21_upstream_503_is_not_retried_by_default_since_1_24(
    version: str, server_attempts: int
) -> None:
    world = make_world(config=MeshConfig(istio_version=version))
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, refuse=True))  # the server sidecar answers 503
    records = drive(world, count=1, rate=10)
    assert [r.response_code for r in src(records)] == [503]
    assert len(dst(records)) == server_attempts


def test_item22_connect_failure_is_retried_on_another_host() -> None:
    world = make_world()
    world.apply_break(BreakAction(workload="reviews-v1", kill=1))
    records = src(drive(world, count=300, rate=200))
    assert by(records, "response_code")[200] == 300
    assert any(r.attempts == 2 for r in records)


def test_item23_explicit_retries_on_5xx_make_four_server_attempts_and_urx() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      retries: {attempts: 3, retryOn: 5xx}
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(only(v))
    records = drive(world, count=1, rate=10)
    (client,) = src(records)
    assert (client.response_code, client.response_flags, client.attempts) == (500, ("URX",), 4)
    assert len(dst(records)) == 4


def test_item24_attempts_0_means_no_retry_and_connect_failure_is_503_uf() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      retries: {attempts: 0}
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, kill=1))
    (client,) = src(drive(world, count=1, rate=10))
    assert (client.response_code, client.response_flags, client.attempts) == (503, ("UF",), 1)


def test_item25_route_timeout_gives_504_ut_and_the_server_logs_dc() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      timeout: 1s
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, latency_ms=3000))
    records = drive(world, count=1, rate=10)
    (client,) = src(records)
    assert (client.response_code, client.response_flags) == (504, ("UT",))
    assert 1000 <= client.duration_ms < 1010
    (server,) = dst(records)
    assert (server.response_code, server.response_flags) == (0, ("DC",))


def test_item26_per_try_timeout_retried_on_gateway_error_until_the_route_timeout() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      timeout: 2s
      retries: {attempts: 3, perTryTimeout: 0.5s, retryOn: gateway-error}
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, latency_ms=1000))
    records = drive(world, count=1, rate=10)
    (client,) = src(records)
    assert client.response_code == 504
    assert "UT" in client.response_flags
    assert 1500 <= client.duration_ms <= 2010
    assert 3 <= len(dst(records)) <= 4


def test_item26_per_try_timeout_with_default_retry_on_is_not_retried() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      retries: {attempts: 3, perTryTimeout: 0.5s}
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, latency_ms=1000))
    records = drive(world, count=1, rate=10)
    (client,) = src(records)
    assert (client.response_code, client.response_flags, client.attempts) == (504, ("UT",), 1)
    assert 500 <= client.duration_ms < 510


def test_item27_backoff_is_jittered_below_25ms_then_75ms() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      retries: {attempts: 2, retryOn: 5xx}
""")
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(only(v))
    records = drive(world, count=200, rate=20)
    by_request: dict[str, list[float]] = {}
    for r in dst(records):
        by_request.setdefault(r.request_id, []).append(r.start_time)
    first_gaps, second_gaps = [], []
    for starts in by_request.values():
        starts.sort()
        first_gaps.append(starts[1] - starts[0])
        second_gaps.append(starts[2] - starts[1])
    # the gap also holds one round trip (~1 ms of hops): back-off < 25 ms, then < 75 ms
    assert max(first_gaps) < 0.025 + 0.003
    assert max(second_gaps) < 0.075 + 0.003
    assert max(second_gaps) > 0.03  # the second back-off range is wider


def test_item28_route_timeout_includes_the_pending_queue() -> None:
    # one host (subset v1): its one connection serves one request at a time, the rest queue
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews, subset: v1}}]
      timeout: 0.5s
""")
        + """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 100}
  subsets: [{name: v1, labels: {version: v1}}]
"""
    )
    for v in ("reviews-v1", "reviews-v2", "reviews-v3"):
        world.apply_break(BreakAction(workload=v, latency_ms=300))
    records = drive(world, concurrency=3, count=3)
    codes = sorted(r.response_code for r in src(records))
    assert codes == [200, 504, 504]
    assert len([r for r in dst(records) if r.response_code == 200]) == 1


def _reviews_v1_resets(resets: int, version: str = "1.28") -> tuple[list[RequestRecord], int]:
    """One request to reviews v1 whose app resets the first ``resets`` requests unread:
    (records, requests the app then served)."""
    world = make_world(
        vs("    - route: [{destination: {host: reviews, subset: v1}}]") + "---\n" + DR_V1,
        config=MeshConfig(istio_version=version),
    )
    pod = world.pods["reviews-v1-0"]
    pod.resets_before_read = resets
    records = drive(world, count=1, rate=10)
    return list(records), pod.served


DR_V1 = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""


def test_item29_inbound_retries_a_reset_before_request_twice() -> None:
    records, served = _reviews_v1_resets(2)
    assert [r.response_code for r in src(records)] == [200]
    server = dst(records)
    assert [(r.response_code, r.response_flags) for r in server] == [(200, ())]
    assert served == 1


def test_item29_a_third_reset_exhausts_the_inbound_retries() -> None:
    records, served = _reviews_v1_resets(3)
    server = dst(records)
    assert [(r.response_code, r.response_flags) for r in server] == [(503, ("UC", "URX"))]
    assert served == 0


def test_item29_before_istio_1_24_the_inbound_route_has_no_retry() -> None:
    records, served = _reviews_v1_resets(1, version="1.23")
    server = dst(records)
    assert server[0].response_code == 503 and server[0].response_flags == ("UC",)
    assert served == 1  # the pre-1.24 client default retries the 503: the next try is served


def test_item30_abort_100_percent_is_fi_at_the_client_and_never_retried() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      retries: {attempts: 3, retryOn: 5xx}
      fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
""")
    )
    records = drive(world, count=20, rate=50)
    assert {(r.response_code, r.response_flags, r.attempts) for r in src(records)} == {
        (500, ("FI",), 1)
    }
    assert {r.response_code_details for r in src(records)} == {"fault_filter_abort"}
    assert dst(records) == []


def test_item31_abort_without_percentage_never_fires() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 500}}
""")
    )
    assert {r.response_code for r in src(drive(world, count=50, rate=50))} == {200}


def test_item32_delay_50_percent() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      fault: {delay: {fixedDelay: 5s, percentage: {value: 50}}}
""")
    )
    records = src(drive(world, count=400, rate=100))
    delayed = [r for r in records if "DI" in r.response_flags]
    assert 0.43 < len(delayed) / 400 < 0.57
    assert all(r.duration_ms >= 5000 for r in delayed)
    assert all(r.duration_ms < 100 for r in records if "DI" not in r.response_flags)


def test_item33_delay_then_abort_flags_di_fi() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      fault:
        delay: {fixedDelay: 1s, percentage: {value: 100}}
        abort: {httpStatus: 503, percentage: {value: 100}}
""")
    )
    (r,) = src(drive(world, count=1, rate=10))
    assert (r.response_code, r.response_flags) == (503, ("DI", "FI"))
    assert r.duration_ms >= 1000


def test_delay_does_not_consume_the_route_timeout() -> None:
    """Reference §4: the fault filter runs before the router starts the route timeout."""
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      timeout: 0.5s
      fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}
""")
    )
    (r,) = src(drive(world, count=1, rate=10))
    assert (r.response_code, r.response_flags) == (200, ("DI",))


def test_item34_fault_applies_only_on_the_proxy_evaluating_the_vs() -> None:
    world = make_world(
        vs("""
    - route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
""")
    )
    records = drive(world, source="outside", count=10, rate=50)
    assert {r.response_code for r in dst(records)} == {200}


def test_split_path_parses_query() -> None:
    assert split_path("/a?x=1&y") == ("/a", {"x": "1", "y": ""})
