"""Build a simulated mesh from the test app plus Istio YAML, drive traffic, read the records."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from mesh.app import App, load_app
from mesh.envoy.translate import MeshEnvoyConfig, translate
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model import FrozenMap
from mesh.records import Reporter, RequestRecord
from mesh.source.load import load_text
from mesh.topology import MeshConfig, build_topology
from sim.accesslog import TcpOutcome
from sim.messages import Response, Trace
from sim.traffic import TrafficDriver, drain, run_until_quiet
from sim.world import World

TESTDATA = Path(__file__).parent / "testdata"


@functools.cache
def sample_app(name: str) -> App:
    """A test app under ``testdata/`` (``app``: client, reviews v1-v3, shadow; ``locality``)."""
    return load_app(TESTDATA / name)


def make_world(
    istio: str = "", *, seed: int = 1, config: MeshConfig | None = None, app_name: str = "app"
) -> World:
    """The test app plus ``istio`` (YAML text), translated and ready to run."""
    app = sample_app(app_name)
    extra = load_text(istio, default_namespace="t").resources if istio.strip() else ()
    resources = [*app.resources, *extra]
    topology = build_topology(resources, config)
    return World(
        topology, app.behavior, translate(resources, topology), seed=seed, resources=resources
    )


Listener = dict[str, Any]
ListenerEdit = Callable[[str, Listener], Listener]
"""(pod name, a deep copy of one of its listeners) -> the listener the pod gets instead."""


def make_edited_world(
    istio: str = "",
    edit: ListenerEdit = lambda _pod, listener: listener,
    *,
    seed: int = 1,
    config: MeshConfig | None = None,
) -> World:
    """Like :func:`make_world`, with every proxy's translated listeners passed through ``edit``
    first: a hand-edited Envoy config, which the simulator must follow as it is."""
    app = sample_app("app")
    extra = load_text(istio, default_namespace="t").resources if istio.strip() else ()
    resources = [*app.resources, *extra]
    topology = build_topology(resources, config)
    envoy = translate(resources, topology)
    edited = MeshEnvoyConfig(
        {
            name: dataclasses.replace(
                cfg, listeners=tuple(edit(name, copy.deepcopy(x)) for x in cfg.listeners)
            )
            for name, cfg in envoy.items()
        }
    )
    return World(topology, app.behavior, edited, seed=seed, resources=resources)


def one_request(
    world: World,
    *,
    to: str = "reviews",
    source: str = "client",
    path: str = "/r",
    headers: dict[str, str] | None = None,
    port: int | None = None,
) -> tuple[Response, list[str]]:
    """Send one request and run the world until it is answered: what the client app gets, and
    the trace of the decisions."""
    driver = TrafficDriver(world, TrafficSpec(from_=source, to=to, count=1, port=port))
    trace = Trace()
    req = driver.request(RequestSpec(path=path, headers=FrozenMap(headers or {})), trace)
    proc = world.env.process(driver.send(req))
    world.env.run(until=proc)
    drain(world.env, world.env.now + 600.0)  # what the client no longer waits for
    assert isinstance(proc.value, Response)
    return proc.value, [f"{where}: {text}" for _, where, text in trace.lines]


def one_connection(
    world: World, to: str, *, source: str = "client", send: int = 100, receive: int = 2000
) -> TcpOutcome:
    """Open one TCP connection (``to``: a Service or ``IP:port``) and return how it ended."""
    spec = TrafficSpec(
        from_=source, to=to, protocol="tcp", count=1, send_bytes=send, receive_bytes=receive
    )
    driver = TrafficDriver(world, spec)
    proc = world.env.process(driver.open(driver.connection()))
    world.env.run(until=proc)
    assert isinstance(proc.value, TcpOutcome)
    return proc.value


Req = tuple[str, str] | tuple[str, str, dict[str, str]]


def drive(
    world: World,
    *,
    requests: Sequence[Req] = (("GET", "/r"),),
    to: str = "reviews",
    source: str = "client",
    rate: float | None = None,
    concurrency: int | None = None,
    count: int | None = None,
    duration: float | None = None,
) -> list[RequestRecord]:
    """Drive traffic and return every record produced so far."""
    mix = tuple(
        RequestSpec(method=r[0], path=r[1], headers=FrozenMap(r[2] if len(r) > 2 else {}))  # type: ignore[misc]
        for r in requests
    )
    spec = TrafficSpec(
        from_=source,
        to=to,
        requests=mix,
        rate_rps=rate if concurrency is None else None,
        concurrency=concurrency,
        count=count,
        duration_s=duration,
    )
    driver = TrafficDriver(world, spec)
    driver.start()
    run_until_quiet(world.env, driver, hard_limit=world.env.now + (duration or 60.0) + 600.0)
    return list(world.records)


def src(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.reporter is Reporter.SOURCE]


def dst(records: Iterable[RequestRecord]) -> list[RequestRecord]:
    return [r for r in records if r.reporter is Reporter.DESTINATION]


def by(records: Iterable[RequestRecord], attr: str) -> Counter[object]:
    return Counter(getattr(r, attr) for r in records)
