"""The data plane is wired explicitly (sim/dataplane.py): a World holds state only, and an app's
downstream call reaches its sidecar through the DataPlane installed as ``World.hops``."""

from __future__ import annotations

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
        world.hops.call(client, req, service)


def test_wiring_is_idempotent_and_the_driver_wires_the_world() -> None:
    world = make_world()
    plane = wire(world)
    assert isinstance(plane, DataPlane) and world.hops is plane
    assert wire(world) is plane
    assert {r.response_code for r in src(drive(world, count=3, rate=20))} == {200}
    assert world.hops is plane
