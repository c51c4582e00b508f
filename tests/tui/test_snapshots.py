"""SVG snapshots of every view at 120x40 and at 80x24, the smallest terminal the TUI is made for
(``pytest --snapshot-update`` after a deliberate change, and look at the SVGs).

The fake runners make every number on screen deterministic; lesson 01 is the only lesson shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from textual.pilot import Pilot

from mesh.model import Resource
from tests.tui.pilot_helpers import wait_compare, wait_for, wait_loaded, wait_run
from tests.tui.test_pilot import text_of
from tui.app import MeshplayApp
from tui.topology_view import TopologyPane
from tui.traces_view import TracesPane

SIZES = pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])


LIMITS = ("max_connections", "max_pending_requests", "max_requests", "max_retries")


def fixed_proxy_config(resources: Sequence[Resource], pod: str) -> Mapping[str, Any]:
    """A stand-in for the translator, so this snapshot changes only when the TUI does."""
    return {
        "listeners": [{"name": "virtualOutbound"}, {"name": "virtualInbound"}],
        "routes": [
            {"name": "8080", "virtual_hosts": [{"name": "product.shop.svc.cluster.local:8080"}]}
        ],
        "clusters": [
            {
                "name": f"outbound|8080|{v}|product.shop.svc.cluster.local",
                "circuit_breakers": {"thresholds": [dict.fromkeys(LIMITS, 4294967295)]},
            }
            for v in ("v1", "v2")
        ],
    }


async def run_lesson(pilot: Pilot[None]) -> None:
    await wait_loaded(pilot)
    await pilot.press("enter", "r")
    await wait_run(pilot)


@SIZES
def test_lessons_view(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    async def show(pilot: Pilot[None]) -> None:
        await wait_loaded(pilot)
        await pilot.pause(0.3)  # the lesson page (markdown) is laid out

    assert snap_compare(make_app(), terminal_size=size, run_before=show)


@SIZES
def test_run_view_after_a_run(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=run_lesson)


@SIZES
def test_topology_view_with_an_edge_selected(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    async def topology(pilot: Pilot[None]) -> None:
        await run_lesson(pilot)
        await pilot.press("3")
        app = pilot.app
        pane = app.query_one("#topology", TopologyPane)
        assert pane.select("product", "api-gateway->product")
        await wait_for(pilot, lambda: "listeners (" in text_of(app, "#topo-text"))  # type: ignore[arg-type]
        await pilot.pause()

    app = make_app(proxy_config=fixed_proxy_config)
    assert snap_compare(app, terminal_size=size, run_before=topology)


@SIZES
def test_compare_view(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    async def compare(pilot: Pilot[None]) -> None:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        await wait_compare(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=compare)


@SIZES
def test_traces_view(
    snap_compare: Any, make_app: Callable[..., MeshplayApp], size: tuple[int, int]
) -> None:
    async def traces(pilot: Pilot[None]) -> None:
        await run_lesson(pilot)
        await pilot.press("5")
        pane = pilot.app.query_one(TracesPane)
        await wait_for(pilot, lambda: pane.size.width > 0 and bool(pane.traces))
        await pilot.pause()  # the waterfall redrawn at the pane's width

    assert snap_compare(make_app(), terminal_size=size, run_before=traces)
