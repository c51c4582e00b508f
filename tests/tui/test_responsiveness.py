"""What keeps keys fast during long runs: incremental aggregates equal full recounts, tables and
the footer update in place, the runner yields to a waiting UI thread, the heap is frozen."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from mesh.lesson import Lesson, load_lesson
from mesh.runner import RunOptions
from tests.tui.conftest import LESSONS
from tests.tui.fakes import FakeRunner
from tui.app import MeshplayApp
from tui.graph import mtls_share
from tui.interpreter import QuietHeap, UiTurn
from tui.live import LiveRun
from tui.tables import sync_rows
from tui.traces import TraceIndex, group_traces


@pytest.fixture(scope="module")
def lesson() -> Lesson:
    return load_lesson(LESSONS / "01-request-routing")


def test_live_aggregates_equal_a_recount_of_the_steps_records(lesson: Lesson) -> None:
    live = LiveRun(lesson, "fake")
    run = FakeRunner(fail_every=7, requests_per_step=60, batch=7).run(lesson, live.options())
    for step in range(len(lesson.steps)):
        records = live.records(step)
        view = live.view(step)
        assert view.requests == len({r.request_id for r in records})
        assert dict(view.mtls) == pytest.approx(mtls_share(records))
        assert live.traces(step, limit=20) == group_traces(records, limit=20)
    live.finish(run)
    final = live.view(1)
    assert final.final and dict(final.mtls) == pytest.approx(mtls_share(run.steps[1].records))


def test_trace_index_fed_in_batches_finds_the_same_newest_traces(lesson: Lesson) -> None:
    records = FakeRunner(requests_per_step=50).run(lesson, RunOptions(until_step=1)).records
    index = TraceIndex()
    index.add(records[:31])
    assert index.newest(10) == group_traces(records[:31], limit=10)
    index.add(records[31:])  # traces cut in two by the batch boundary get their other spans
    assert index.newest(10) == group_traces(records, limit=10)
    assert index.records == len(records)


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="t", cursor_type="row")
        table.add_column("A", key="A")
        table.add_column("B", key="B")
        yield table


async def test_sync_rows_rewrites_changed_cells_in_place_and_keeps_the_cursor() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one("#t", DataTable)
        assert sync_rows(table, [("x", ("1", "a")), ("y", ("2", "b")), ("z", ("3", "c"))])
        table.move_cursor(row=2)
        await pilot.pause()
        updates: list[tuple[object, object]] = []
        original = table.update_cell

        def spy(row: object, column: object, value: object, **kw: object) -> None:
            updates.append((getattr(row, "value", row), getattr(column, "value", column)))
            original(row, column, value)  # type: ignore[arg-type]

        table.update_cell = spy  # type: ignore[method-assign, assignment]
        assert not sync_rows(table, [("x", ("1", "a")), ("y", ("2", "B")), ("z", ("3", "c"))])
        assert updates == [("y", "B")]  # one cell rewritten, nothing rebuilt
        assert table.cursor_row == 2 and table.get_row("y") == ["2", "B"]
        assert sync_rows(table, [("x", ("1", "a")), ("w", ("9", "z"))])  # a different tail
        assert [k.value for k in table.rows] == ["x", "w"]


def test_a_claim_pauses_the_runner_until_released_and_never_for_long() -> None:
    turn = UiTurn(claim_s=5.0, max_wait_s=5.0)
    turn.claim()
    turn.claim()  # claims nest
    returned: list[float] = []

    def runner() -> None:
        turn.wait()
        returned.append(time.monotonic())

    thread = threading.Thread(target=runner)
    thread.start()
    time.sleep(0.05)
    turn.release()
    time.sleep(0.05)
    assert not returned  # one claim still holds
    released = time.monotonic()
    turn.release()
    thread.join(2.0)
    # an order, not a duration: the runner went on only after the last release (a thread that
    # started late on a busy machine waits less, never returns earlier)
    assert returned and released <= returned[0] < released + 2.0
    short = UiTurn(claim_s=0.05, max_wait_s=1.0)
    short.claim()  # never released: the runner goes on after claim_s
    start = time.monotonic()
    short.wait()
    assert time.monotonic() - start < 0.5


def test_the_heap_is_frozen_while_a_run_holds_it() -> None:
    heap = QuietHeap()
    before = gc.get_freeze_count()
    heap.hold()
    heap.hold()
    assert gc.get_freeze_count() > before
    heap.release()
    assert heap.held and gc.get_freeze_count() > before
    heap.release()
    assert (heap.held, gc.get_freeze_count()) == (False, 0)


async def test_footer_shows_the_topology_keys_only_on_the_topology_view(
    make_app: Callable[..., MeshplayApp],
) -> None:
    app = make_app()

    def shown() -> list[str]:
        return [k.key for k in app.query(FooterKey) if k.display]

    async with app.run_test(size=(120, 40)) as pilot:
        for view, has_node_keys in (("3", True), ("2", False), ("3", True), ("5", False)):
            await pilot.press(view)
            await pilot.pause()
            assert ("n" in shown() and "x" in shown()) is has_node_keys, (view, shown())
            assert shown()[-3:] == ["r", "q", "ctrl+p"]
