"""Build a simulated mesh from the test app plus Istio YAML, drive traffic, read the records."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from mesh.app import App, load_app
from mesh.envoy.translate import translate
from mesh.lesson import RequestSpec, TrafficSpec
from mesh.model import FrozenMap
from mesh.records import Reporter, RequestRecord
from mesh.source.load import load_text
from mesh.topology import MeshConfig, build_topology
from sim.traffic import TrafficDriver, run_until_quiet
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
