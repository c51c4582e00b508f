"""A run as the screen sees it: records arriving step by step, summarised in throttled views.

The runner calls ``on_progress``/``on_records`` from its worker thread. :class:`LiveRun` keeps the
records under a lock, aggregating what is cheap to keep up to date as they arrive (distinct
requests, time span, mutual-TLS counts per edge, spans grouped by trace), and at most every
``interval`` seconds computes a :class:`StepView` (the per-edge table, the per-destination traffic
split, the expectations measured so far, the share of mutual TLS per edge) *in that thread* and
hands it to ``publish``. The UI thread only draws finished views, so a long run never makes the
screen wait and key presses are handled while records pour in.
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
from mesh.metrics import EdgeStats, edge_key, edge_stats
from mesh.observe.spans import Span
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from mesh.runner import LessonRun, Progress, RunEvent, RunOptions
from tui.interpreter import UiTurn
from tui.traces import Trace, TraceIndex

__all__ = ["LiveRun", "StepRecords", "StepView", "traffic_split"]

Split = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
Shares = tuple[tuple[tuple[str, str], float], ...]
CHUNK = 1000
"""Records aggregated between two looks at the UI thread's claim."""


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
    mtls: Shares = ()
    """Per edge ``(client, service)``, the share of requests the server saw over mutual TLS."""
    skipped: str = ""
    """Why the step did not run on this runner (``StepResult.skipped``), once the run ended."""
    events: tuple[RunEvent, ...] = ()
    """What happened to the mesh during the step (``StepResult.events``): lesson events, pods
    that died or were restarted, rejected configs."""
    started_at: float = 0.0

    @property
    def passed(self) -> bool:
        """Every expectation measured so far passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)


class StepRecords:
    """The records of one step and what is kept up to date as they arrive.

    Istio counts a request once per proxy that reports it, so requests are the distinct
    ``x-request-id`` values; mutual TLS is what the server side (``reporter=destination``) saw,
    as ``connection_security_policy`` says; spans are grouped by trace for the traces view.
    """

    def __init__(self, records: Sequence[RequestRecord] = ()) -> None:
        self.records: list[RequestRecord] = []
        self._ids: set[str] = set()
        self._start = math.inf
        self._end = -math.inf
        self._tls: dict[tuple[str, str], list[int]] = {}
        self.traces = TraceIndex()
        self.add(records)

    def add(self, records: Sequence[RequestRecord]) -> None:
        """Aggregate a batch."""
        self.records.extend(records)
        ids, tls = self._ids, self._tls
        for r in records:
            if r.request_id:
                ids.add(r.request_id)
            self._start = min(self._start, r.start_time)
            self._end = max(self._end, r.start_time + r.duration_ms / 1000.0)
            if r.reporter is Reporter.DESTINATION:
                counts = tls.setdefault(edge_key(r), [0, 0])
                counts[1] += 1
                counts[0] += r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
        self.traces.add(records)

    @property
    def requests(self) -> int:
        """Requests that entered the mesh: distinct request ids (every hop of one request shares
        its ``x-request-id``)."""
        return len(self._ids) if self._ids else len(self.records)

    @property
    def duration(self) -> float:
        """Seconds from the first request's start to the last one's end."""
        return max(self._end - self._start, 1e-9) if self.records else 0.0

    @property
    def mtls(self) -> Shares:
        """Per edge, the share of server-side reports over mutual TLS."""
        return tuple((edge, n / total) for edge, (n, total) in sorted(self._tls.items()))


@dataclass
class LiveRun:
    """Records of a run in progress, per step, and the views computed from them."""

    lesson: Lesson
    runner: str
    seed: int = 1
    publish: Callable[[StepView], None] | None = None
    interval: float = 0.25
    cancel: threading.Event = field(default_factory=threading.Event)
    turn: UiTurn | None = None
    """When set, the runner's callbacks wait while the UI thread claims the interpreter."""
    result: LessonRun | None = None
    step: int = 0
    fraction: float = 0.0
    _records: dict[int, StepRecords] = field(default_factory=lambda: defaultdict(StepRecords))
    _final: dict[int, StepRecords] = field(default_factory=dict)
    _spans: dict[int, list[Span]] = field(default_factory=lambda: defaultdict(list))
    """Envoy's spans per step, as the runner handed them over."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    views: dict[int, StepView] = field(default_factory=dict)
    _last: float = 0.0
    _cost: float = 0.0
    started: bool = False
    """The runner reported progress or records (it had opened the app)."""

    def options(self, until_step: int | None = None) -> RunOptions:
        """RunOptions wired to this live run's callbacks."""
        return RunOptions(
            seed=self.seed,
            until_step=until_step,
            on_progress=self.on_progress,
            on_records=self.on_records,
            on_spans=self.on_spans,
            cancel=self.cancel,
        )

    def on_progress(self, progress: Progress) -> None:
        """Runner callback: where the run is."""
        if self.turn is not None:
            self.turn.wait()
        self._enter(progress.step)
        with self._lock:
            self.fraction = progress.fraction
        self._maybe_publish()

    def on_records(self, step: int, records: Sequence[RequestRecord]) -> None:
        """Runner callback: a batch of records of ``step`` (the simulator hands over a whole
        step at once: aggregated in chunks, so a key press waits for one chunk at most)."""
        self._enter(step)
        for start in range(0, len(records), CHUNK):
            if self.turn is not None:
                self.turn.wait()
            with self._lock:
                self._records[step].add(records[start : start + CHUNK])
        self._maybe_publish()

    def on_spans(self, step: int, spans: Sequence[Span]) -> None:
        """Runner callback: the spans Envoy's tracer reported for ``step`` (the traces view
        shows them instead of spans derived from the records)."""
        if not spans:
            return
        with self._lock:
            self._spans[step].extend(spans)
            self._records[step].traces.add_spans(spans)
            final = self._final.get(step)
            if final is not None:
                final.traces.add_spans(spans)

    def _enter(self, step: int) -> None:
        """A new step began: publish the complete view of the one before, whatever the throttle."""
        self.started = True
        with self._lock:
            previous, self.step = self.step, step
        if step > previous:
            self._publish(previous)  # drawn as complete: view() gives past steps fraction 1

    def _maybe_publish(self) -> None:
        # never spend more than ~20% of the runner's time on views
        if time.monotonic() - self._last >= max(self.interval, 4 * self._cost):
            self._publish(self.step)

    def _publish(self, step: int) -> None:
        if self.turn is not None:
            self.turn.wait()
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
        final = {index: StepRecords(step.records) for index, step in enumerate(run.steps)}
        with self._lock:
            for index, spans in self._spans.items():
                if index in final:
                    final[index].traces.add_spans(spans)
            self._final = final
            self.result = run
        self.fraction = 1.0
        for index in range(len(run.steps)):
            if self.turn is not None:
                self.turn.wait()
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
        with self._lock:
            final = self._final.get(step)
            if final is not None:
                return tuple(final.records)
            live = self._records.get(step)
            return tuple(live.records) if live is not None else ()

    def all_records(self) -> tuple[RequestRecord, ...]:
        """Records of every step so far."""
        if self.result is not None:
            return self.result.records
        with self._lock:
            return tuple(r for step in sorted(self._records) for r in self._records[step].records)

    def traces(self, step: int, limit: int = 50) -> list[Trace]:
        """The newest traces of a step, newest first (from spans grouped as they arrived):
        Envoy's own when the runner handed them over, else derived from the records."""
        with self._lock:
            held = self._final.get(step) or self._records.get(step)
            return held.traces.newest(limit) if held is not None else []

    def spans_seen(self, step: int) -> int:
        """How many Envoy spans of ``step`` the runner handed over (0: traces come from the
        records)."""
        with self._lock:
            return len(self._spans.get(step, ()))

    def view(self, step: int) -> StepView:
        """The view of one step: final results when the runner gave them, else live ones."""
        steps = self.lesson.steps
        spec = steps[step]
        with self._lock:
            final = self._final.get(step)
        if self.result is not None and final is not None:
            res = self.result.steps[step]
            rows = tuple(edge_stats(res.records, res.duration_s))
            return StepView(
                index=step,
                name=spec.name,
                steps=len(steps),
                fraction=1.0,
                requests=final.requests,
                duration_s=res.duration_s,
                rows=rows,
                split=traffic_split(rows),
                checks=res.checks,
                final=True,
                mtls=final.mtls,
                skipped=res.skipped,
                events=res.events,
                started_at=res.started_at,
            )
        with self._lock:
            held = self._records.get(step) or StepRecords()
            records = tuple(held.records)
            requests, duration, mtls = held.requests, held.duration, held.mtls
            fraction = self.fraction if step == self.step else (1.0 if step < self.step else 0.0)
        rows = tuple(edge_stats(records, duration)) if records else ()
        checks = evaluate_all(spec.expect, records, duration) if records else ()
        return StepView(
            index=step,
            name=spec.name,
            steps=len(steps),
            fraction=fraction if not math.isnan(fraction) else 0.0,
            requests=requests,
            duration_s=duration,
            rows=rows,
            split=traffic_split(rows),
            checks=checks,
            mtls=mtls,
        )
