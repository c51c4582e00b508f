"""Test doubles for the executor seam: an executor that carries no traffic.

:class:`ScriptedExecutor` logs every call the lesson engine makes, in order, and returns for each
step the records its ``script`` produces. It grades nothing and knows no routing: whatever a test
wants the "mesh" to have done is the test's own data, handed in as the script.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mesh.lesson import BreakAction, Lesson
from mesh.records import Reporter, RequestRecord
from mesh.runner import (
    DriveContext,
    RunEvent,
    RunnerError,
    StepPlan,
    StepTraffic,
    TimedChange,
)
from mesh.state import MeshState

Script = Callable[[StepPlan, random.Random], Sequence[RequestRecord]]
"""A step's records, given its plan and the run's random source (seeded at ``open``)."""


def no_records(plan: StepPlan, rng: random.Random) -> Sequence[RequestRecord]:
    """The default script: a step in which nothing was sent."""
    return ()


def record(
    *,
    start: float = 0.0,
    client: str = "api-gateway",
    service: str = "product",
    version: str = "v1",
    code: int = 200,
    flags: tuple[str, ...] = (),
    path: str = "/products",
    request_id: str = "",
) -> RequestRecord:
    """One client-side record of ``client -> service`` in namespace ``shop``."""
    host = f"{service}.shop.svc.cluster.local"
    return RequestRecord(
        start_time=start,
        duration_ms=2.0,
        reporter=Reporter.SOURCE,
        source_workload=f"{client}-v1",
        source_namespace="shop",
        source_principal=f"spiffe://cluster.local/ns/shop/sa/{client}",
        source_app=client,
        destination_service=host,
        destination_workload=f"{service}-{version}",
        destination_namespace="shop",
        destination_version=version,
        destination_app=service,
        upstream_cluster=f"outbound|8080|{version}|{host}",
        upstream_host="10.0.0.1:8080",
        method="GET",
        path=path,
        authority=f"{service}:8080",
        response_code=code,
        response_flags=flags,
        request_id=request_id,
    )


@dataclass
class ScriptedExecutor:
    """An :class:`~mesh.runner.Executor` that only logs and replays.

    ``calls`` lists ``(method, detail)`` in call order (a push as the lesson's resources in it); ``drive`` applies the timeline in order
    (logged as ``("at", at_s)``, then the push/breaks it holds), emits the scripted records in
    batches of ``batch`` requests (consecutive records with one request id; 0: never emits, the
    engine then emits them), sleeping ``delay_s``
    between batches and stopping early when cancelled. ``fail_in`` names a method that raises
    :class:`RunnerError` (``"drive:2"``: the drive of step index 2).
    """

    name: str = "fake"
    script: Script = no_records
    duration_s: float = 10.0
    started_at: float = 0.0
    batch: int = 0
    delay_s: float = 0.0
    refuse: str = ""
    fail_in: str = ""
    calls: list[tuple[str, object]] = field(default_factory=list)
    state: MeshState | None = None
    breaks: list[BreakAction] = field(default_factory=list)
    closed: bool = False
    on_drive: Callable[[StepPlan], None] | None = None
    events: Callable[[StepPlan], Sequence[RunEvent]] | None = None
    """What happened to the mesh in a step (pods dying...), as the test scripts it."""
    rng: random.Random = field(default_factory=random.Random)
    """Seeded with the run's seed at ``open``: what the script draws from."""
    app_keys: set[tuple[str, str, str]] = field(default_factory=set)
    """The app's own resources (``push`` logs only what the lesson added to them)."""

    def _maybe_fail(self, where: str) -> None:
        if self.fail_in == where:
            raise RunnerError(f"scripted failure in {where}")

    def preflight(self, lesson: Lesson, steps: Sequence[StepPlan]) -> None:
        self.calls.append(("preflight", tuple(p.index for p in steps)))
        if self.refuse:
            raise RunnerError(self.refuse)

    def open(self, lesson: Lesson, state: MeshState, seed: int) -> None:
        self.calls.append(("open", seed))
        self.rng = random.Random(seed)
        self.app_keys = {(r.KIND, r.namespace, r.name) for r in state}
        self.state = state
        self._maybe_fail("open")

    def push(self, state: MeshState) -> None:
        added = (r for r in state if (r.KIND, r.namespace, r.name) not in self.app_keys)
        self.calls.append(("push", tuple(sorted(f"{r.KIND}/{r.name}" for r in added))))
        self.state = state
        self._maybe_fail("push")

    def break_workload(self, action: BreakAction) -> None:
        self.calls.append(("break", action))
        self.breaks.append(action)

    def drive(
        self, plan: StepPlan, timeline: Sequence[TimedChange], ctx: DriveContext
    ) -> StepTraffic:
        self.calls.append(("drive", plan.index))
        self._maybe_fail(f"drive:{plan.index}")
        if self.on_drive is not None:
            self.on_drive(plan)
        for change in timeline:
            self.calls.append(("at", change.at_s))
            if change.state is not None:
                self.push(change.state)
            for action in change.breaks:
                self.break_workload(action)
        records = list(self.script(plan, self.rng))
        requests = _requests(records)
        if self.batch:
            sent: list[RequestRecord] = []
            for start in range(0, len(requests), self.batch):
                if ctx.cancel.is_set():
                    break
                chunk = [r for group in requests[start : start + self.batch] for r in group]
                ctx.emit(chunk)
                sent.extend(chunk)
                done = min(start + self.batch, len(requests))
                ctx.progress(done / len(requests), done)
                if self.delay_s:
                    time.sleep(self.delay_s)
            records = sent
        ctx.progress(1.0, len(_requests(records)))
        events = tuple(self.events(plan)) if self.events is not None else ()
        return StepTraffic(tuple(records), self.started_at, self.duration_s, events)

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closed = True

    def methods(self) -> list[str]:
        """The call names only, in order."""
        return [name for name, _ in self.calls]


def _requests(records: Sequence[RequestRecord]) -> list[list[RequestRecord]]:
    """Consecutive records sharing a request id, as one request each (no id: one record)."""
    groups: list[list[RequestRecord]] = []
    for r in records:
        if groups and r.request_id and groups[-1][0].request_id == r.request_id:
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


PRODUCT_SUBSETS = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product, namespace: shop}
spec:
  host: product
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
"""The e-commerce app's product service split into subsets v1 and v2."""


def all_to(subset: str) -> str:
    """A VirtualService sending every request for product to ``subset``."""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: product, namespace: shop}}
spec:
  hosts: [product]
  http:
  - route:
    - destination: {{host: product, subset: {subset}}}
"""


def lesson_folder(root: Path, name: str, lesson_yaml: str) -> Path:
    """A lesson folder ``root/lessons/name`` on the repository's apps, with ``istio/dr.yaml``
    (:data:`PRODUCT_SUBSETS`), ``istio/vs-v1.yaml`` and ``istio/vs-v2.yaml``."""
    lessons = root / "lessons"
    lessons.mkdir(exist_ok=True)
    if not (lessons / "apps").exists():
        (lessons / "apps").symlink_to(Path(__file__).resolve().parents[1] / "lessons" / "apps")
    folder = lessons / name
    (folder / "istio").mkdir(parents=True)
    (folder / "lesson.yaml").write_text(lesson_yaml)
    (folder / "istio" / "dr.yaml").write_text(PRODUCT_SUBSETS)
    (folder / "istio" / "vs-v1.yaml").write_text(all_to("v1"))
    (folder / "istio" / "vs-v2.yaml").write_text(all_to("v2"))
    return folder
