"""The TUI's rough edges of issue 17, each driven as a learner meets it: the screen paints before
the lessons are read; every long action shows progress; ``q`` leaves at once and stops the run;
circuit breakers say what the generated clusters say; state follows runs and ``--lesson``;
meshplay's actions in the command palette; a visible focus; client and server spans named apart;
skipped steps and cancelled runs said as such."""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.color import Color
from textual.widgets import Markdown, ProgressBar, Select, Tree
from textual.widgets._select import SelectCurrent

import tui.session
from mesh.lesson import Lesson
from tests.tui.conftest import LESSONS
from tests.tui.fakes import FakeRunner
from tests.tui.pilot_helpers import send_key, wait_for, wait_loaded, wait_run
from tests.tui.test_pilot import column, text_of
from tui.app import MeshplayApp
from tui.compare_view import ComparePane
from tui.topology_view import TopologyPane


async def test_the_screen_paints_before_the_lessons_are_read(
    make_app: Callable[..., MeshplayApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real = tui.session.load_lesson

    def slow_load(path: Any) -> Lesson:
        release.wait(3)  # reading the lessons takes as long as the test wants
        return real(path)

    monkeypatch.setattr(tui.session, "load_lesson", slow_load)
    app = make_app()
    started = time.monotonic()
    async with app.run_test(size=(80, 24)) as pilot:
        painted = time.monotonic() - started
        tree = app.query_one("#lesson-tree", Tree)
        first = str(tree.root.children[0].label)
        assert "loading lessons" in first
        assert not app.session.loaded
        release.set()
        await wait_loaded(pilot)
        assert app.session.lessons and "01 Request routing" in str(tree.get_node_at_line(1).label)
    assert painted < 2.5  # the screen came up while the lessons were still being read


async def test_compare_shows_which_runner_runs_and_how_far(
    make_app: Callable[..., MeshplayApp],
) -> None:
    slow = {
        "sim": lambda: FakeRunner("sim", delay_s=0.05, requests_per_step=200),
        "local": lambda: FakeRunner("local", delay_s=0.05, requests_per_step=200, latency_ms=12),
    }
    app = make_app(slow)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("4", "m")
        pane = app.query_one("#compare", ComparePane)
        seen: set[str] = set()
        while pane.busy:
            status = text_of(app, "#cmp-status")
            if "(1/2)" in status or "(2/2)" in status:
                seen.add(status.split(" (")[0] + (" 1" if "(1/2)" in status else " 2"))
            await pilot.pause(0.1)
        assert "01-request-routing on sim 1" in seen and "01-request-routing on local 2" in seen
        assert not app.query_one("#cmp-progress", ProgressBar).display  # done: bar hidden
        status = text_of(app, "#cmp-status")
        # local is 4x slower: latency rows are information, counted as such
        assert "metrics " in status and " 0 info" not in status.split("metrics ")[1]


async def test_q_during_a_run_cancels_it_and_leaves_at_once(
    make_app: Callable[..., MeshplayApp],
) -> None:
    # batches 3 s apart (minutes if left alone): an app that waited for the run's current
    # batch would take seconds to quit, one that leaves at once well under 2 s even when busy
    runner = FakeRunner("sim", delay_s=3.0, requests_per_step=2000)
    app = make_app({"sim": lambda: runner})
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_for(
            pilot, lambda: app.run_pane.live is not None and bool(app.run_pane.live.views)
        )
        live = app.run_pane.live
        assert live is not None
        pressed = time.monotonic()
        send_key(app, "q")
        while app.is_running:
            await asyncio.sleep(0.01)
            assert time.monotonic() - pressed < 5, "the app did not quit"
        quit_s = time.monotonic() - pressed
    assert live.cancel.is_set()  # the run was asked to stop, not left running
    work = [w for w in app.session.work if w.thread.is_alive()]
    for item in work:
        item.thread.join(timeout=10)
    assert not any(w.thread.is_alive() for w in app.session.work)
    assert quit_s < 2.0, quit_s


class SkipsStep2(FakeRunner):
    """A "local" fake; the lesson restricts its step 2 to sim."""


def lesson_with_a_sim_only_step(tmp_path: Path) -> Path:
    root = tmp_path / "lessons"
    shutil.copytree(LESSONS / "apps", root / "apps")
    shutil.copytree(LESSONS / "01-request-routing", root / "01-request-routing")
    spec = root / "01-request-routing" / "lesson.yaml"
    text = spec.read_text()
    anchor = "  - name: Pin every request to v1\n"
    spec.write_text(text.replace(anchor, anchor + "    runners: [sim]\n"))
    return root


async def test_a_step_for_other_runners_says_skipped_and_a_cancel_says_cancelled(
    make_app: Callable[..., MeshplayApp], tmp_path: Path
) -> None:
    app = make_app(
        {"local": lambda: FakeRunner("local")}, root=lesson_with_a_sim_only_step(tmp_path)
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("left_square_bracket")
        assert "Step 2/3" in text_of(app, "#step-title")
        assert "skipped on local: this step runs on sim" in text_of(app, "#step-title")
    slow = make_app({"sim": lambda: FakeRunner("sim", delay_s=0.05, requests_per_step=400)})
    async with slow.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await pilot.pause(0.2)
        await pilot.press("c")
        await wait_run(pilot)
        assert text_of(slow, "#run-status").startswith("CANCELLED after")


async def test_circuit_breakers_say_what_the_generated_clusters_say(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()  # the real translator
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("3")
        pane = app.query_one("#topology", TopologyPane)
        assert pane.select("product", "api-gateway->product")
        await wait_for(pilot, lambda: "listeners (" in text_of(app, "#topo-text"))
        text = text_of(app, "#topo-text")
        breakers = text.split("circuit breakers", 1)[1].split("outlier ejection", 1)[0]
        assert "1024" not in breakers  # not Envoy's defaults: Istio sets 2^32-1
        assert "no connectionPool in a DestinationRule" in breakers
        assert "every limit 4294967295" in breakers
        assert "product.shop.svc.cluster.local" in breakers.replace("\n", "").replace(" ", "")


async def test_a_passed_lesson_page_says_so_without_moving_the_cursor(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        page = app.query_one("#lesson-md", Markdown)
        assert "not passed yet" in page.source
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("1")
        await pilot.pause()
        assert "✔ sim" in page.source and "not passed yet" not in page.source


async def test_lesson_flag_opens_the_lesson_in_every_view(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app(root=LESSONS, lesson="08-circuit-breaking")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.pause(0.2)
        tree = app.query_one("#lesson-tree", Tree)
        assert tree.cursor_node is not None and tree.cursor_node.data == "08-circuit-breaking"
        assert app.query_one("#lesson-md", Markdown).source.startswith("# Circuit breaking")
        assert text_of(app, "#run-title").startswith("Circuit breaking")


async def test_the_command_palette_offers_meshplays_actions(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in ("Run the lesson on sim", "Run up to this step", "Cancel the run",
                       "Compare runners", "Use runner local", "Open lesson 01-request-routing"):  # fmt: skip
            assert wanted in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.3)
        await pilot.press(*"Use runner local")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert app.query_one("#runner", Select).value == "local"


def _distance(a: Color, b: Color) -> float:
    return float(sum((x - y) ** 2 for x, y in zip(a.rgb, b.rgb, strict=True)) ** 0.5)


async def test_focus_on_the_runner_selector_is_plain_to_see(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("2")
        current = app.query_one("#runner SelectCurrent", SelectCurrent)
        blurred = current.styles.background
        app.query_one("#runner", Select).focus()
        await pilot.pause()
        focused = current.styles.background
        assert _distance(focused, blurred) > 80, (blurred, focused)


async def test_a_hops_client_and_server_spans_are_named_apart(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_loaded(pilot)
        await pilot.press("enter", "r")
        await wait_run(pilot)
        await pilot.press("5")
        lines = text_of(app, "#waterfall").splitlines()
        client = [x for x in lines if "client api-gateway → product" in x]
        # the server span is named by the proxy that reported it (Envoy's service name is the
        # workload: product-v1 or product-v2)
        server = [x for x in lines if re.search(r"server product-v\d ← api-gateway", x)]
        assert client and server


async def test_everything_essential_reads_at_80x24(make_app: Callable[..., MeshplayApp]) -> None:
    app = make_app(root=LESSONS)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_loaded(pilot)
        tree = app.query_one("#lesson-tree", Tree)
        labels = [str(tree.get_node_at_line(i).label) for i in range(1, 6)]  # type: ignore[union-attr]
        # the learning path's first phase: its lessons in path order
        assert labels[0].endswith("22 Setting up the mesh") and labels[1].endswith(
            "20 Service communication"
        )
        assert all(len(label) <= tree.size.width for label in labels)
        for key in ("h", "r", "q"):  # every key of the footer is on screen, none cut
            widgets = [k for k in app.query("FooterKey") if k.key == key and k.display]
            assert widgets and widgets[0].region.right <= 80, key
        await pilot.press("enter", "r")
        await wait_run(pilot)
        checks = app.query_one("#checks")
        expectations = column(checks, "EXPECTATION")  # type: ignore[arg-type]
        assert expectations and all(e.replace("\n  ", " ").endswith(("0.999", "0.99"))
                                    for e in expectations)  # fmt: skip
        assert all(len(line) <= 50 for e in expectations for line in e.splitlines())
        await pilot.press("3")
        pane = app.query_one("#topology", TopologyPane)
        assert pane.select("product", "api-gateway->product")
        await wait_for(pilot, lambda: "listeners (" in text_of(app, "#topo-text"))
        width = app.query_one("#topo-detail").size.width
        lines = text_of(app, "#topo-text").splitlines()
        assert all(len(line) <= width for line in lines), [x for x in lines if len(x) > width]
        for above, below in itertools.pairwise(lines):
            if "outbound|" in above and below.startswith(" " * 6) and "|" in below:
                assert above.endswith(("|", ".", " ", ",", ":")), (above, below)  # not mid-word
