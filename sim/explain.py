"""``meshplay explain``: the path of one request through the simulated mesh, decision by decision.

The request runs in the world of a lesson step (its applied resources, broken workloads and the
outlier detectors the earlier steps' traffic left in each proxy, as a running mesh remembers its
ejections), with a :class:`sim.messages.Trace` attached. Every proxy on the way notes what it decided: the
listener and route configuration, the virtual host, the matched route and the VirtualService rule
it came from, the weighted-cluster draw, fault filter actions, the endpoint and why the load
balancer chose it, each attempt, retry and back-off, ejections, and the final status with its
response flags spelled out.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass

from mesh.engine import run_lesson
from mesh.lesson import BreakAction, Lesson, RequestSpec
from mesh.model import FrozenMap
from mesh.records import RESPONSE_FLAGS, RequestRecord
from mesh.runner import RunnerError, RunOptions
from mesh.state import MeshState, step_state
from sim.accesslog import TcpOutcome
from sim.cluster import OutlierState
from sim.messages import Request, Response, Trace
from sim.runner import SimExecutor, build_world, step_seed
from sim.traffic import TrafficDriver, drain
from sim.world import World

__all__ = ["Explanation", "explain", "parse_request"]


def parse_request(text: str) -> RequestSpec:
    """``GET /api/products -H end-user:jason`` -> RequestSpec."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty request: write e.g. 'GET /api/products -H end-user:jason'")
    method, path = "GET", "/"
    rest = words
    if not words[0].startswith("/") and words[0] != "-H":
        method, rest = words[0].upper(), words[1:]
    headers: dict[str, str] = {}
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in ("-H", "--header"):
            if i + 1 >= len(rest):
                raise ValueError("-H needs a 'name: value'")
            name, sep, value = rest[i + 1].partition(":")
            if not sep:
                raise ValueError(f"header {rest[i + 1]!r} is not 'name: value'")
            headers[name.strip().lower()] = value.strip()
            i += 2
        else:
            path = word
            i += 1
    return RequestSpec(method=method, path=path, headers=FrozenMap(headers))


@dataclass(frozen=True)
class Explanation:
    """One request's journey."""

    request: Request
    response: Response
    lines: tuple[tuple[float, str, str], ...]
    records: tuple[RequestRecord, ...]
    source: str

    def render(self) -> str:
        """Human-readable text."""
        req = self.request
        headers = " ".join(f"-H {k}:{v}" for k, v in req.headers.items() if k != "x-request-id")
        out = [
            f"{req.method} {req.path} {headers}".rstrip() + f"  (from {self.source}, "
            f"Host {req.authority})",
            "",
        ]
        for t, where, text in self.lines:
            out.append(f"  {t * 1000:8.2f} ms  {where:<28} {text}")
        resp = self.response
        out.append("")
        flags = ", ".join(f"{f} ({RESPONSE_FLAGS.get(f, '?')})" for f in resp.flags) or "-"
        out.append(f"result: {resp.status}  flags: {flags}  details: {resp.details}")
        if resp.body:
            out.append(f"body: {resp.body}")
        causes = _causes(self.records)
        if causes:
            out.append("")
            out.append("chain of causes (innermost first):")
            out.extend(f"  {c}" for c in causes)
        return "\n".join(out)


def _causes(records: tuple[RequestRecord, ...]) -> list[str]:
    lines = []
    for r in sorted(records, key=lambda r: r.start_time + r.duration_ms / 1000.0):
        if r.ok and not r.response_flags:
            continue
        flags = ",".join(r.response_flags) or "-"
        long = ", ".join(RESPONSE_FLAGS.get(f, f) for f in r.response_flags)
        who = r.source_workload if r.reporter.value == "source" else r.destination_workload
        lines.append(
            f"{r.reporter.value:<11} {who:<22} {r.method} {r.path} -> {r.response_code} "
            f"{flags}{' (' + long + ')' if long else ''} [{r.response_code_details}]"
        )
    return lines


def explain(
    lesson: Lesson,
    request: RequestSpec,
    *,
    source: str | None = None,
    to: str | None = None,
    step: int | None = None,
    seed: int = 1,
) -> Explanation:
    """Send one request in the world of lesson step ``step`` (1-based; default: the last)."""
    steps = lesson.steps
    if not steps:
        raise RunnerError("the lesson has no steps")
    last = len(steps) if step is None else step
    if not 1 <= last <= len(steps):
        raise RunnerError(f"step {last} does not exist: the lesson has {len(steps)} steps")
    state = MeshState(lesson.app.resources)
    breaks: list[BreakAction] = []
    for s in steps[:last]:
        state = step_state(lesson, state, s)
        breaks.extend(s.break_)
        for event in s.events:
            breaks.extend(event.break_)
    world = build_world(lesson, state, step_seed(seed, last - 1))
    for action in breaks:
        world.apply_break(action)
    world.restore_outliers(_outliers_before(lesson, last, seed))
    traffic = lesson.traffic_of(steps[last - 1])
    traffic = dataclasses.replace(
        traffic,
        from_=source if source is not None else traffic.from_,
        to=to if to is not None else traffic.to,
    )
    driver = TrafficDriver(world, traffic)
    trace = Trace()
    if traffic.is_tcp:
        return _explain_connection(world, driver, trace, traffic.from_)
    req = driver.request(request, trace)
    proc = world.env.process(driver.send(req))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)
    response = proc.value
    assert isinstance(response, Response)
    return Explanation(req, response, tuple(trace.lines), tuple(world.records), traffic.from_)


def _outliers_before(lesson: Lesson, step: int, seed: int) -> dict[str, dict[str, OutlierState]]:
    """Each proxy's outlier detectors as the traffic of steps 1..``step - 1`` leaves them (the
    lesson run on the simulator up to there): an endpoint ejected in an earlier step is still
    ejected in this one until its time is served."""
    if step <= 1:
        return {}
    executor = SimExecutor()
    run_lesson(executor, lesson, RunOptions(seed=seed, until_step=step - 1))
    return executor.outliers


def _explain_connection(
    world: World, driver: TrafficDriver, trace: Trace, source: str
) -> Explanation:
    """``protocol: tcp`` traffic: one TCP connection instead of a request (shown as ``TCP``;
    result 0, as Istio's TCP metrics have no response code)."""
    conn = driver.connection(trace)
    proc = world.env.process(driver.open(conn))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)
    out = proc.value
    assert isinstance(out, TcpOutcome)
    target = f"{conn.address}:{conn.port}"
    req = Request("TCP", f"{conn.send_bytes} bytes", target, conn.port, {}, "", "", trace)
    resp = Response(0, out.flags, out.details or "connection closed by the client")
    resp.upstream_cluster, resp.upstream_host = out.upstream_cluster, out.upstream_host
    return Explanation(req, resp, tuple(trace.lines), tuple(world.records), source)
