"""A step's traffic on a cluster: where the load generator runs, in which image, and the step's
timed events fired from the generator's ``started`` line.

The generator pod stands in for the lesson's caller (``traffic.from``): it carries the caller
Deployment's labels and service account, so its sidecar has the caller's identity and
configuration. In a multi-cluster lesson it therefore runs in the caller's cluster (where the
lesson places that Deployment); traffic from ``outside`` or ``ingress`` starts in the first
cluster.

Its program is meshplay's own generator (``python -m cluster.kube.loadgen``), so its image
must hold meshplay: the caller's image when it runs one of meshplay's services (the e-commerce
app), else another Deployment's meshplay image, else meshplay's services image
:data:`LOADGEN_IMAGE`, which ``meshplay cluster up`` builds and loads into a kind cluster: the
only way for apps without a meshplay image (helloworld's ``curlimages/curl`` and Istio's
examples images, bookinfo's), where it must be in the caller's cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cluster.kube.fleet import Fleet
from cluster.kube.generator import (
    LOADGEN_IMAGE,
    GeneratorEvent,
    generator_pod,
    service_ports,
    step_job,
)
from cluster.kube.manifests import Manifest
from cluster.kube.pods import service_container
from mesh.lesson import Lesson
from mesh.runner import DriveContext, RunnerError, StepPlan, TimedChange

__all__ = [
    "LOADGEN_IMAGE",
    "GeneratorWatch",
    "generator_image",
    "generator_note",
    "step_generator",
]


def generator_image(client: Manifest | None, app: Iterable[Manifest]) -> tuple[str, bool]:
    """The image the generator runs in, and whether it is meshplay's services image rather
    than one of the app's (it must then be built and loaded: ``meshplay cluster up``)."""
    for d in ([client] if client is not None else []) + sorted(
        (m for m in app if m.kind == "Deployment"), key=lambda m: m.name
    ):
        if service_container(d):
            containers = d.body["spec"]["template"]["spec"]["containers"]
            return str(containers[0]["image"]), False
    return LOADGEN_IMAGE, True


def step_generator(
    plan: StepPlan,
    fleet: Fleet,
    *,
    find: Callable[[str], list[Manifest]],
    current: Mapping[tuple[str, str, str], Manifest],
    app: Iterable[Manifest],
    namespace: str,
    run_id: str,
    lesson_id: str,
) -> tuple[Manifest, str]:
    """The step's generator pod and the cluster it runs in (the caller's). ``find`` names the
    Deployments of a workload; ``current`` is what is applied now."""
    spec = plan.traffic
    client = None
    where = fleet.home
    if spec.from_ not in ("outside", "ingress"):
        candidates = find(spec.from_)
        if not candidates:
            raise RunnerError(f'traffic from "{spec.from_}": no such Deployment or app in the mesh')
        client = candidates[0]
        where = (fleet.clusters_of(client.name, client.namespace) or [where])[0]
    endpoints: list[str] = []
    if spec.from_ == "outside" and spec.address is None:
        service = current.get(("Service", namespace, spec.to))
        if service is not None:
            endpoints = fleet.member(where).endpoints(service.body)
    job = step_job(plan, namespace, service_ports(current.values(), namespace), endpoints)
    pod = generator_pod(
        name=f"meshplay-loadgen-{run_id}-s{plan.index + 1}",
        namespace=namespace,
        job=job,
        image=generator_image(client, app)[0],
        client=client.body if client is not None else None,
        run_id=run_id,
        lesson_id=lesson_id,
    )
    return pod, where


def generator_note(lesson: Lesson, app: Iterable[Manifest]) -> str:
    """The plan's remark on what runs the traffic, and what must be in the caller's cluster."""
    image, own = generator_image(None, app)
    if not own:
        return f"# load generator: python -m cluster.kube.loadgen in the app's image {image}"
    return (
        f"# load generator: the app {lesson.app.path.name} has no image with meshplay's generator, "
        f"so each step's generator pod runs python -m cluster.kube.loadgen in meshplay's services "
        f"image {image} (docker build -f services/Dockerfile -t {image} ., then kind load "
        f"docker-image {image} --name <the caller's kind cluster>; meshplay cluster up does both)"
    )


class GeneratorWatch:
    """Follows a generator's events: arms the step's timeline at ``started``, reports progress,
    keeps ``done``/``error``."""

    def __init__(
        self, timeline: Sequence[TimedChange], fire: Callable[[TimedChange, list[TimedChange]], None],
        ctx: DriveContext,
    ) -> None:  # fmt: skip
        self.timeline = list(timeline)
        self.pending = list(timeline)
        self.fire = fire
        self.ctx = ctx
        self.timers: list[threading.Timer] = []
        self.seen: dict[str, Any] = {}

    def __call__(self, event: GeneratorEvent) -> None:
        if event.kind == "started":
            self.seen["started"] = event.number("at") or time.time()
            self.seen["started_local"] = time.monotonic()
            for change in self.timeline:
                timer = threading.Timer(change.at_s, self.fire, args=(change, self.pending))
                timer.daemon = True
                timer.start()
                self.timers.append(timer)
        elif event.kind == "progress":
            self.ctx.progress(event.number("fraction"), int(event.number("sent")))
        elif event.kind in ("done", "error"):
            self.seen[event.kind] = event
            self.seen["ended_local"] = time.monotonic()

    def cancel(self) -> None:
        """Stop the timers (what is still pending is fired by the caller)."""
        for timer in self.timers:
            timer.cancel()

    def event(self, kind: str) -> GeneratorEvent | None:
        """The ``done`` or ``error`` event, if it came."""
        found = self.seen.get(kind)
        return found if isinstance(found, GeneratorEvent) else None

    def duration(self) -> float:
        """The traffic's wall time: the generator's own, else as seen from here."""
        done = self.event("done")
        duration = done.number("wall_s") if done is not None else 0.0
        if not duration and "started_local" in self.seen:
            duration = float(self.seen.get("ended_local", time.monotonic())) - float(
                self.seen["started_local"]
            )
        return duration
