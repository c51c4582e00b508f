"""A run as the screen sees it: records arriving step by step, summarised in throttled views.

The runner calls ``on_progress``/``on_records`` from its worker thread. :class:`LiveRun` keeps the
records under a lock and, at most every ``interval`` seconds, computes a :class:`StepView` (the
per-edge table, the per-destination traffic split and the expectations measured so far) *in that
thread* and hands it to ``publish``. The UI thread only draws finished views, so a long run never
makes the screen wait and key presses are handled while records pour in.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mesh.checks import CheckResult, evaluate_all
from mesh.lesson import Lesson
from mesh.metrics import EdgeStats, edge_stats
from mesh.records import RequestRecord
from mesh.runner import LessonRun, Progress, RunOptions

__all__ = ["LiveRun", "StepView", "traffic_split"]

Split = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]


def traffic_split(rows: Sequence[EdgeStats]) -> Split:
    """Requests per destination service and version (``-`` when the version is unknown)."""
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        for version, n in row.versions:
            per[row.service][version] += n
    return tuple((svc, tuple(sorted(per[svc].items()))) for svc in sorted(per))


@dataclass(frozen=True, slots=True)
class StepView:
    """What the run view draws for one step."""

    index: int
    name: str
    steps: int
    fraction: float
    requests: int
    duration_s: float
    rows: tuple[EdgeStats, ...]
    split: Split
    checks: tuple[CheckResult, ...]
    final: bool = False

    @property
    def passed(self) -> bool:
        """Every expectation measured so far passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)


def _requests(records: Sequence[RequestRecord]) -> int:
    """Requests that entered the mesh: distinct request ids (every hop of one request shares its
    ``x-request-id``)."""
    ids = {r.request_id for r in records if r.request_id}
    return len(ids) if ids else len(records)


def _duration(records: Sequence[RequestRecord]) -> float:
    if not records:
        return 0.0
    start = min(r.start_time for r in records)
    end = max(r.start_time + r.duration_ms / 1000.0 for r in records)
    return max(end - start, 1e-9)


@dataclass
class LiveRun:
    """Records of a run in progress, per step, and the views computed from them."""

    lesson: Lesson
    runner: str
    seed: int = 1
    publish: Callable[[StepView], None] | None = None
    interval: float = 0.25
    cancel: threading.Event = field(default_factory=threading.Event)
    result: LessonRun | None = None
    step: int = 0
    fraction: float = 0.0
    _records: dict[int, list[RequestRecord]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    views: dict[int, StepView] = field(default_factory=dict)
    _last: float = 0.0
    _cost: float = 0.0

    def options(self, until_step: int | None = None) -> RunOptions:
        """RunOptions wired to this live run's callbacks."""
        return RunOptions(
            seed=self.seed,
            until_step=until_step,
            on_progress=self.on_progress,
            on_records=self.on_records,
            cancel=self.cancel,
        )

    def on_progress(self, progress: Progress) -> None:
        """Runner callback: where the run is."""
        self._enter(progress.step)
        with self._lock:
            self.fraction = progress.fraction
        self._maybe_publish()

    def on_records(self, step: int, records: Sequence[RequestRecord]) -> None:
        """Runner callback: a batch of records of ``step``."""
        self._enter(step)
        with self._lock:
            self._records[step].extend(records)
        self._maybe_publish()

    def _enter(self, step: int) -> None:
        """A new step began: publish the complete view of the one before, whatever the throttle."""
        with self._lock:
            previous, self.step = self.step, step
        if step > previous:
            self._publish(previous)  # drawn as complete: view() gives past steps fraction 1

    def _maybe_publish(self) -> None:
        # never spend more than ~20% of the runner's time on views
        if time.monotonic() - self._last >= max(self.interval, 4 * self._cost):
            self._publish(self.step)

    def _publish(self, step: int) -> None:
        now = time.monotonic()
        self._last = now
        view = self.view(step)
        self.views[step] = view
        self._cost = time.monotonic() - now
        if self.publish is not None:
            self.publish(view)

    def finish(self, run: LessonRun) -> None:
        """The runner returned: its own results replace the live ones; the views of every step
        are computed here, in the worker thread, so the screen only draws them."""
        self.result = run
        self.fraction = 1.0
        for index in range(len(run.steps)):
            self.views[index] = self.view(index)

    def latest_view(self, step: int) -> StepView:
        """The last view computed for ``step`` (an empty one when none was yet)."""
        view = self.views.get(step)
        if view is not None:
            return view
        spec = self.lesson.steps[step]
        return StepView(step, spec.name, len(self.lesson.steps), 0.0, 0, 0.0, (), (), ())

    def records(self, step: int) -> tuple[RequestRecord, ...]:
        """Records of a step (the final ones once the run finished)."""
        if self.result is not None and step < len(self.result.steps):
            return self.result.steps[step].records
        with self._lock:
            return tuple(self._records.get(step, ()))

    def all_records(self) -> tuple[RequestRecord, ...]:
        """Records of every step so far."""
        if self.result is not None:
            return self.result.records
        with self._lock:
            return tuple(r for step in sorted(self._records) for r in self._records[step])

    def view(self, step: int) -> StepView:
        """The view of one step: final results when the runner gave them, else live ones."""
        steps = self.lesson.steps
        spec = steps[step]
        if self.result is not None and step < len(self.result.steps):
            res = self.result.steps[step]
            rows = tuple(edge_stats(res.records, res.duration_s))
            return StepView(
                index=step,
                name=spec.name,
                steps=len(steps),
                fraction=1.0,
                requests=_requests(res.records),
                duration_s=res.duration_s,
                rows=rows,
                split=traffic_split(rows),
                checks=res.checks,
                final=True,
            )
        records = self.records(step)
        duration = _duration(records)
        rows = tuple(edge_stats(records, duration)) if records else ()
        checks = evaluate_all(spec.expect, records, duration) if records else ()
        with self._lock:
            fraction = self.fraction if step == self.step else (1.0 if step < self.step else 0.0)
        return StepView(
            index=step,
            name=spec.name,
            steps=len(steps),
            fraction=fraction if not math.isnan(fraction) else 0.0,
            requests=_requests(records),
            duration_s=duration,
            rows=rows,
            split=traffic_split(rows),
            checks=checks,
        )
