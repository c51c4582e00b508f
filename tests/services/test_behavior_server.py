"""The behaviour server makes exactly the calls an app declares, and answers as declared.

As tests/services/test_behavior.py does for the shop's real services: the example app
`docs/examples/apps/newsfeed` (no code of its own) runs as one behaviour-server process per
service, each with a recording proxy as its `HTTP_PROXY` where the sidecar would sit. Every
declared endpoint is requested; the calls each service made must be the declared ones (sequential
steps in order, parallel steps as a set, all begun after the step before ended), carrying the
declared headers: trace headers unless the service does not propagate them, `forwardHeaders`,
and the header derived from the session cookie. Then the app's own behaviour on failure: its
retry and degraded answer (200, smaller body, marker header) when a call fails, its own timeout
when a call is slow, and the status it propagates.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cluster.local.apps import write_declaration
from mesh.app import TRACE_HEADERS, AppBehavior, Call, Parallel, load_behavior
from tests.services.recorder import RecordedCall, Recorder
from tests.services.stack import ROOT, clean_env, free_port

APP = ROOT / "docs/examples/apps/newsfeed"
TRACE = {
    "x-request-id": "req-1",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736",
    "x-b3-spanid": "00f067aa0ba902b7",
    "x-b3-sampled": "1",
}


@dataclass
class Server:
    name: str
    port: int
    admin_port: int
    recorder: Recorder
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def knobs(self, **values: object) -> None:
        r = httpx.put(f"http://127.0.0.1:{self.admin_port}/admin/knobs", json=values)
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def behavior() -> AppBehavior:
    return load_behavior(APP / "behavior.yaml")


@pytest.fixture(scope="module")
def app(
    behavior: AppBehavior, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    """One behaviour server per service (version v1), each behind its own recording proxy."""
    work = tmp_path_factory.mktemp("behavior-server")
    ports = {name: free_port() for name in behavior.services}
    routes = {f"{name}:{svc.port}": ports[name] for name, svc in behavior.services.items()}
    servers: dict[str, Server] = {}
    try:
        for name, svc in behavior.services.items():
            recorder = Recorder(name, routes)
            file = write_declaration(work / f"{name}.json", behavior, svc, "v1")
            env = clean_env()
            admin = free_port()
            env.update(
                HOST="127.0.0.1",
                PORT=str(ports[name]),
                ADMIN_PORT=str(admin),
                SEED="1",
                SERVICE_NAME=name,
                VERSION="v1",
                POD_NAME=f"{name}-v1-0",
                BEHAVIOR_FILE=str(file),
                HTTP_PROXY=f"http://127.0.0.1:{recorder.port}",
                NO_PROXY="127.0.0.1,localhost",
            )
            log = work / f"{name}.log"
            popen = subprocess.Popen(
                [sys.executable, "-m", "services.behavior_server"],
                cwd=ROOT,
                env=env,
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
            )
            servers[name] = Server(name, ports[name], admin, recorder, popen, log)
        deadline = time.monotonic() + 40
        for server in servers.values():
            while True:
                assert server.popen.poll() is None, server.log.read_text()
                try:
                    if httpx.get(server.url + "/readyz", trust_env=False).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.05)
        yield servers
    finally:
        for server in servers.values():
            server.popen.terminate()
            server.popen.wait(timeout=10)
            server.recorder.close()


def _take(app: dict[str, Server]) -> dict[str, list[RecordedCall]]:
    time.sleep(0.05)  # a recorder logs a relayed call a moment after the answer
    return {name: s.recorder.take() for name, s in app.items()}


def _declared_steps(behavior: AppBehavior, service: str, route: str) -> list[set[str]]:
    svc = behavior.services[service]
    endpoint = next(e for e in svc.endpoints if e.route == route)
    steps: list[set[str]] = []
    for step in endpoint.calls:
        calls = step.parallel if isinstance(step, Parallel) else (step,)
        steps.append({f"{c.method} {c.service} {c.path}" for c in calls})
    return steps


def _made_steps(calls: list[RecordedCall]) -> list[set[str]]:
    """Calls grouped into steps: a call begun before the previous one ended is parallel (with
    1 ms of slack: the recorder notes a call's end just after relaying the answer, when the
    caller may already be sending its next call)."""
    steps: list[set[str]] = []
    end = -1.0
    for c in sorted(calls, key=lambda c: c.started):
        line = f"{c.method} {c.service} {c.path}"
        if steps and c.started < end - 0.001:
            steps[-1].add(line)
        else:
            steps.append({line})
        end = max(end, c.started + c.duration_s)
    return steps


def test_every_endpoint_makes_exactly_the_declared_calls(
    app: dict[str, Server], behavior: AppBehavior
) -> None:
    for name, svc in behavior.services.items():
        for endpoint in svc.endpoints:
            method, path = endpoint.route.split()
            _take(app)
            r = httpx.request(method, app[name].url + path, headers=TRACE, trust_env=False)
            assert r.status_code == endpoint.response.status, (name, endpoint.route, r.text)
            assert len(r.content) == (endpoint.response.size or 0)
            made = _take(app)[name]
            assert _made_steps(made) == _declared_steps(behavior, name, endpoint.route), (
                name,
                endpoint.route,
            )


def test_headers_are_forwarded_as_declared(app: dict[str, Server]) -> None:
    _take(app)
    r = httpx.get(
        app["web"].url + "/",
        headers={**TRACE, "cookie": "theme=dark; session=jason"},
        trust_env=False,
    )
    assert r.status_code == 200
    calls = _take(app)
    for call in calls["web"]:
        assert call.headers.get("end-user") == "jason", call
        assert call.headers.get("traceparent") == TRACE["traceparent"], call
        assert call.request_id == "req-1"
        assert "cookie" not in call.headers
    (to_ads,) = calls["feed"]  # feed does not propagate trace context
    assert not set(TRACE_HEADERS) & set(to_ads.headers), to_ads.headers


def test_a_failing_call_is_retried_then_degraded(app: dict[str, Server]) -> None:
    app["feed"].knobs(error_rate=1.0)
    try:
        _take(app)
        r = httpx.get(app["web"].url + "/", headers=TRACE, trust_env=False)
        calls = _take(app)
    finally:
        app["feed"].knobs(error_rate=0.0)
    assert r.status_code == 200
    assert r.headers["x-app-degraded"] == "feed"
    assert len(r.content) == 6000 - 3000
    to_feed = [c for c in calls["web"] if c.service == "feed"]
    assert [c.status for c in to_feed] == [500, 500], "one call and one retry of the app's own"


def test_the_apps_own_timeout_gives_up_on_a_slow_call(app: dict[str, Server]) -> None:
    # 300 ms: past web's 200 ms on ads, and 200 ms inside web's 500 ms on feed (the hops
    # through the recorders cost tens of ms on a loaded machine)
    app["ads"].knobs(latency_ms=300)
    try:
        _take(app)
        started = time.monotonic()
        r = httpx.get(app["web"].url + "/", headers=TRACE, trust_env=False)
        took = time.monotonic() - started
        _take(app)
    finally:
        app["ads"].knobs(latency_ms=0)
    assert r.status_code == 200
    assert r.headers["x-app-degraded"] == "ads", "ads missed web's 200 ms; feed (500 ms) did not"
    assert len(r.content) == 6000 - 1000
    assert took >= 0.3, "the page waits for feed, which waits 300 ms for ads (no timeout)"


def test_the_apps_own_timeout_then_the_propagated_status(app: dict[str, Server]) -> None:
    app["profile"].knobs(latency_ms=3000)
    try:
        started = time.monotonic()
        r = httpx.get(app["web"].url + "/", headers=TRACE, trust_env=False, timeout=10)
        took = time.monotonic() - started
    finally:
        app["profile"].knobs(latency_ms=0)
    assert r.status_code == 502, "web's own 1 s timeout on profile, then its errorStatus"
    assert 1.0 <= took < 2.5, "web gave up at its own 1 s, not after profile's 3 s"


def test_a_propagated_error_answers_the_declared_status(app: dict[str, Server]) -> None:
    app["profile"].knobs(error_rate=1.0)
    try:
        r = httpx.get(app["web"].url + "/", headers=TRACE, trust_env=False)
    finally:
        app["profile"].knobs(error_rate=0.0)
    assert r.status_code == 502  # errorStatus of web's call to profile
    assert "x-app-degraded" not in r.headers


def test_the_declaration_file_names_calls_with_their_ports_and_headers(
    behavior: AppBehavior, tmp_path: Path
) -> None:
    import json

    web = behavior.services["web"]
    data = json.loads(write_declaration(tmp_path / "w.json", behavior, web, "v1").read_text())
    first = data["endpoints"][0]["steps"][0][0]
    assert first["port"] == 8080 and first["error_status"] == 502
    assert "end-user" in first["forward"] and "traceparent" in first["forward"]
    call = web.endpoints[0].calls[0]
    assert isinstance(call, Call)


def test_the_drop_trace_headers_knob_stops_the_propagation(app: dict[str, Server]) -> None:
    app["web"].knobs(drop_trace_headers=True)
    try:
        _take(app)
        httpx.get(
            app["web"].url + "/", headers={**TRACE, "cookie": "session=jason"}, trust_env=False
        )
        calls = _take(app)["web"]
    finally:
        app["web"].knobs(drop_trace_headers=False)
    assert calls and all(not set(TRACE_HEADERS) & set(c.headers) for c in calls)
    assert all(c.headers.get("end-user") == "jason" for c in calls), "other headers still go"
