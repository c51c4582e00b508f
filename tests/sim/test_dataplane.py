"""The data plane is wired explicitly (sim/dataplane.py): a World holds state only, and an app's
downstream call reaches its sidecar through the DataPlane installed as ``World.hops``."""

from __future__ import annotations

import gc
import weakref

import pytest

from sim.dataplane import DataPlane, wire
from sim.messages import Request
from tests.sim.harness import drive, make_world, src


def test_an_unwired_world_says_how_to_wire_it() -> None:
    world = make_world()
    client = world.pods["client-v1-0"]
    service = world.services["reviews.t.svc.cluster.local"]
    req = Request("GET", "/r", "reviews:9080", 9080, {}, "id", "trace")
    with pytest.raises(RuntimeError, match=r"sim\.dataplane\.wire"):
        world.hops.call(world, client, req, service)


def test_wiring_is_idempotent_and_the_driver_wires_the_world() -> None:
    world = make_world()
    plane = wire(world)
    assert isinstance(plane, DataPlane) and world.hops is plane
    assert wire(world) is plane
    assert {r.response_code for r in src(drive(world, count=3, rate=20))} == {200}
    assert world.hops is plane


def test_a_finished_world_is_freed_at_once_not_by_the_cycle_collector() -> None:
    # the data plane keeps no reference to the world: no cycle, so the records of a run go
    # when the world goes (a full GC would otherwise traverse them during the next run)
    world = make_world()
    drive(world, count=3, rate=20)
    gone = weakref.ref(world)
    gc.disable()
    try:
        del world
        assert gone() is None
    finally:
        gc.enable()
