"""The simulator executes what an app does, not only what it calls (docs/app-model.md).

On the example app docs/examples/apps/newsfeed: web calls profile (1 s timeout, errorStatus 502),
then feed (500 ms timeout, one retry, degrade -3000 bytes) and ads (200 ms timeout, degrade -1000
bytes) in parallel; feed drops the trace context on its call to ads; web turns the cookie
`session` into `end-user`. Each test drives requests and reads what the client got and the records
the sidecars logged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.app import load_app
from mesh.envoy.translate import translate
from mesh.lesson import BreakAction
from mesh.records import RequestRecord
from mesh.source.load import load_text
from mesh.topology import build_topology
from sim.world import World
from tests.sim.harness import drive, dst, one_request, src

APP = Path(__file__).resolve().parents[2] / "docs/examples/apps/newsfeed"


def world(istio: str = "", **knobs: dict[str, float]) -> World:
    """The newsfeed app (plus ``istio``), with lesson knobs per workload
    (``feed={"latency_s": 0.8}``)."""
    app = load_app(APP)
    extra = load_text(istio, default_namespace="news").resources if istio.strip() else ()
    resources = [*app.resources, *extra]
    topology = build_topology(resources)
    w = World(topology, app.behavior, translate(resources, topology), seed=1, resources=resources)
    for pod in w.pods.values():
        for name, value in knobs.get(pod.app, {}).items():
            setattr(pod, name, value)
    return w


def edge(records: list[RequestRecord], client: str, service: str) -> list[RequestRecord]:
    return [r for r in records if r.source_app == client and r.destination_service_name == service]


def test_a_page_answers_its_declared_status_and_size() -> None:
    w = world()
    resp, _ = one_request(w, to="web", source="outside", path="/")
    assert (resp.status, resp.size, resp.headers) == (200, 6000, None)
    (page,) = [r for r in dst(w.records) if r.destination_service_name == "web"]
    assert page.bytes_sent == 6000
    (to_profile,) = edge(src(w.records), "web", "profile")
    assert to_profile.bytes_sent == 300


def test_the_session_cookie_becomes_an_end_user_header_on_the_calls() -> None:
    w = world()
    _, trace = one_request(
        w, to="web", source="outside", path="/", headers={"cookie": "theme=dark; session=jason"}
    )
    received = [line for line in trace if "the app receives GET /profile" in line]
    assert received and "end-user: jason" in received[0], trace


def test_an_app_that_drops_trace_headers_starts_new_traces() -> None:
    w = world()
    one_request(w, to="web", source="outside", path="/")
    (page,) = [r for r in dst(w.records) if r.destination_service_name == "web"]
    web_calls = [r for r in w.records if r.source_app == "web"]
    assert web_calls and {r.trace_id for r in web_calls} == {page.trace_id}
    feed_calls = [r for r in w.records if r.source_app == "feed"]
    assert feed_calls and page.trace_id not in {r.trace_id for r in feed_calls}
    assert page.request_id not in {r.request_id for r in feed_calls}


def test_a_failing_call_is_retried_by_the_app_then_the_page_degrades() -> None:
    w = world(feed={"error_rate": 1.0})
    resp, _ = one_request(w, to="web", source="outside", path="/")
    assert resp.status == 200
    assert resp.size == 3000
    assert resp.headers == {"x-app-degraded": "feed"}
    assert [r.response_code for r in edge(src(w.records), "web", "feed")] == [500, 500]
    (page,) = [r for r in dst(w.records) if r.destination_service_name == "web"]
    assert (page.response_code, page.bytes_sent) == (200, 3000)


def test_the_apps_own_timeout_abandons_the_call_which_its_sidecar_logs_DC() -> None:
    w = world(feed={"latency_s": 0.8})
    resp, _ = one_request(w, to="web", source="outside", path="/")
    assert (resp.status, resp.size) == (200, 3000)
    calls = edge(src(w.records), "web", "feed")
    assert [(r.response_code, r.response_flags) for r in calls] == [(0, ("DC",))] * 2
    assert all(r.duration_ms == pytest.approx(500, abs=1) for r in calls)
    (page,) = [r for r in dst(w.records) if r.destination_service_name == "web"]
    assert 1000 <= page.duration_ms < 1100, "two of the app's own 500 ms attempts"


def test_a_propagated_error_answers_the_declared_error_status() -> None:
    w = world(profile={"error_rate": 1.0})
    resp, _ = one_request(w, to="web", source="outside", path="/")
    assert resp.status == 502
    assert not edge(src(w.records), "web", "feed"), "the page stops at the failed step"


def test_the_apps_timeout_cuts_the_mesh_retries_short() -> None:
    """An app timeout of 500 ms over a mesh policy of 3 retries with 200 ms per try: the app
    gives up during the mesh's third try, then retries once itself, under the policy again."""
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: feed, namespace: news}
spec:
  hosts: [feed]
  http:
    - route: [{destination: {host: feed}}]
      retries: {attempts: 3, perTryTimeout: 200ms, retryOn: 5xx}
"""
    w = world(vs, feed={"latency_s": 0.3})
    resp, _ = one_request(w, to="web", source="outside", path="/")
    assert (resp.status, resp.headers) == (200, {"x-app-degraded": "feed"})
    calls = edge(src(w.records), "web", "feed")
    assert [r.response_flags for r in calls] == [("DC",)] * 2
    tries = [r for r in dst(w.records) if r.destination_service_name == "feed"]
    assert 4 <= len(tries) <= 6, "2 or 3 mesh tries within each of the app's 500 ms attempts"


def test_records_of_an_app_without_new_fields_are_unchanged() -> None:
    """The shop declares no sizes: its records keep 0 bytes (lessons' records unchanged)."""
    from tests.sim.harness import make_world

    w = make_world()
    records = drive(w, count=5)
    assert records and all(r.bytes_sent == 0 for r in records)


def test_the_drop_trace_headers_knob_breaks_the_callers_traces() -> None:
    w = world()
    w.apply_break(BreakAction(workload="web-v1", drop_trace_headers=True))
    one_request(w, to="web", source="outside", path="/")
    (page,) = [r for r in dst(w.records) if r.destination_service_name == "web"]
    web_calls = [r for r in w.records if r.source_app == "web"]
    assert web_calls and page.trace_id not in {r.trace_id for r in web_calls}
    w.apply_break(BreakAction(workload="web-v1", restore=True))
    assert not any(p.drop_trace_headers for p in w.pods.values())
