"""Istio's circuit-breaking task as a meshplay lesson, for comparing the simulator's connection
pools with real Envoy's (issue 13 item 4).

Istio's task puts ``maxConnections: 1``, ``http1MaxPendingRequests: 1`` and
``maxRequestsPerConnection: 1`` on a service and loads it with fortio: ``fortio load -c 2 -qps 0
-n 20`` (two closed-loop clients, 20 requests), then ``-c 3 -n 30``. Here the client is
api-gateway's sidecar, the service is product pinned to its one v1 pod (one upstream host, as the
task's single httpbin pod), and every *trial* is one lesson step: the same closed-loop burst,
starting with no connection open (``maxRequestsPerConnection: 1`` closes each one after its
request). The share of 503 ``UO`` among a trial's requests is the figure compared.

A trial's UO share is a property of the race between requests and connections: a request that
arrives while another one waits (pending) for a new connection overflows. The runners must agree
on its distribution, not just on one run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cluster.local.runner import LocalRunner
from mesh.lesson import Lesson, load_lesson
from mesh.records import Reporter
from mesh.runner import LessonRun, RunnerError, RunOptions

__all__ = [
    "Z_MAX",
    "Figure",
    "Limits",
    "Phase",
    "Scenario",
    "Summary",
    "agree",
    "figure",
    "istio_task",
    "overflow_z",
    "run_local",
    "summarize",
    "trial_uo_shares",
    "write_lesson",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """The DestinationRule's connectionPool (Istio's task: 1, 1, 1; ``max_requests_per_connection``
    0 leaves it unset: connections are kept alive)."""

    max_connections: int = 1
    http1_max_pending_requests: int = 1
    max_requests_per_connection: int = 1


@dataclass(frozen=True, slots=True)
class Phase:
    """``trials`` bursts of ``clients`` closed-loop clients sending ``count`` requests in all
    (``fortio load -c clients -qps 0 -n count``)."""

    clients: int
    count: int
    trials: int


@dataclass(frozen=True, slots=True)
class Scenario:
    """Phases of trials against product-v1 answering after ``latency_ms`` (its service time)."""

    phases: tuple[Phase, ...]
    latency_ms: float = 5.0
    limits: Limits = Limits()


def istio_task(trials: int, *, latency_ms: float = 5.0, limits: Limits = Limits()) -> Scenario:
    """Istio's two fortio runs, ``-c 2 -n 20`` and ``-c 3 -n 30``, ``trials`` times each."""
    return Scenario((Phase(2, 20, trials), Phase(3, 30, trials)), latency_ms, limits)


DESTINATION_RULE = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: product
  namespace: shop
spec:
  host: product
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: {max_connections}
      http:
        http1MaxPendingRequests: {http1_max_pending_requests}
{per_connection}  subsets:
  - name: v1
    labels:
      version: v1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: product
  namespace: shop
spec:
  hosts:
  - product
  http:
  - route:
    - destination:
        host: product
        subset: v1
"""


def write_lesson(folder: Path, scenario: Scenario) -> Path:
    """Write the scenario as a lesson folder (``app: ecommerce``, found among the bundled apps),
    one step per trial; returns the folder."""
    (folder / "istio").mkdir(parents=True, exist_ok=True)
    limits = scenario.limits
    (folder / "istio" / "limits.yaml").write_text(
        DESTINATION_RULE.format(
            max_connections=limits.max_connections,
            http1_max_pending_requests=limits.http1_max_pending_requests,
            per_connection=(
                f"        maxRequestsPerConnection: {limits.max_requests_per_connection}\n"
                if limits.max_requests_per_connection
                else ""
            ),
        )
    )
    steps = []
    for phase in scenario.phases:
        for i in range(phase.trials):
            step = f"  - name: -c {phase.clients} -n {phase.count}, trial {i + 1}\n"
            if not steps:
                step += (
                    "    apply: [istio/limits.yaml]\n"
                    f"    break: [{{workload: product-v1, latency_ms: {scenario.latency_ms}}}]\n"
                )
            step += (
                "    traffic:\n"
                "      from: api-gateway\n"
                "      to: product\n"
                "      requests: [{method: GET, path: /products}]\n"
                f"      concurrency: {phase.clients}\n"
                f"      count: {phase.count}\n"
            )
            steps.append(step)
    (folder / "lesson.yaml").write_text(
        "title: Istio's circuit-breaking task, trial after trial\n"
        "app: ecommerce\n"
        "runners: [sim, local]\n"
        "steps:\n" + "".join(steps)
    )
    load_lesson(folder)  # fail here, with the lesson's own diagnostics, if it does not load
    return folder


START_ATTEMPTS = 3
"""The local runner starts the whole shop (8 apps, 8 Envoys) within 30 s or gives up; on a
loaded shared machine it sometimes does not make it, which says nothing about the pools."""


def run_local(lesson: Lesson, workdir: Path, seed: int = 1) -> LessonRun:
    """The lesson on the local runner, starting the mesh again when it was not ready in time."""
    for attempt in range(START_ATTEMPTS):
        try:
            return LocalRunner(workdir / f"mesh{attempt}").run(lesson, RunOptions(seed=seed))
        except RunnerError as exc:
            if "not ready in time" not in str(exc) or attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def trial_uo_shares(run: LessonRun) -> dict[int, list[float]]:
    """Per client count, per trial (step): the share of the client sidecar's api-gateway ->
    product records that are 503 ``UO``."""
    shares: dict[int, list[float]] = {}
    for step in run.steps:
        traffic = step.step.traffic
        assert traffic is not None and traffic.concurrency
        client = [
            r
            for r in step.records
            if r.reporter is Reporter.SOURCE
            and r.source_workload.startswith("api-gateway")
            and r.destination_service.startswith("product")
        ]
        if not client:
            continue
        uo = sum(1 for r in client if r.response_code == 503 and "UO" in r.response_flags)
        shares.setdefault(traffic.concurrency, []).append(uo / len(client))
    return shares


@dataclass(frozen=True, slots=True)
class Summary:
    """The distribution of a runner's per-trial UO shares."""

    shares: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.shares)

    @property
    def median(self) -> float:
        return statistics.median(self.shares)

    @property
    def quartiles(self) -> tuple[float, float]:
        q = statistics.quantiles(self.shares, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def sem(self) -> float:
        """Standard error of the mean (trials are independent)."""
        return statistics.stdev(self.shares) / len(self.shares) ** 0.5

    def describe(self) -> str:
        lo, hi = self.quartiles
        return (
            f"mean {self.mean:.3f} +- {self.sem:.3f} (s.e.), median {self.median:.3f}, "
            f"IQR {lo:.3f}-{hi:.3f}, n={len(self.shares)} trials"
        )


def summarize(shares: Sequence[float]) -> Summary:
    """Summary of per-trial shares (at least two)."""
    return Summary(tuple(shares))


@dataclass(frozen=True, slots=True)
class Figure:
    """A measured mean share, its standard error and the number of trials behind it."""

    mean: float
    sem: float
    trials: int


def figure(summary: Summary) -> Figure:
    """The figure of a summary."""
    return Figure(summary.mean, summary.sem, len(summary.shares))


def agree(sim: Summary, real: Figure, count: int, sigmas: float = 3.0) -> bool:
    """Whether the simulator's mean UO share is within ``sigmas`` standard errors of real Envoy's
    (both samples' errors combined). A trial's share moves in steps of ``1/count``: the combined
    error is never taken below one step over the square root of the real trials (a runner whose
    trials all came out the same has a standard error of 0 otherwise)."""
    step = 1.0 / count / math.sqrt(real.trials)
    return abs(sim.mean - real.mean) <= sigmas * math.hypot(real.sem, sim.sem, step)


Z_MAX = 3.3
"""How far apart, in standard errors, two runners' UO shares may be before the comparison says
they differ. With 30 real trials the real share's error is itself estimated from 30 values, so
under the hypothesis that both runners draw from the same share z follows Student's t with about
29 degrees of freedom: |z| > 3.3 has probability 0.26 % per comparison, and a test making two
comparisons (two and three clients) fails by chance about once in 190 runs on a correct
simulator. A simulator off by a tenth in the two-client share is still caught at the typical
spread of real trials (per-trial s.d. 0.12: standard error 0.022 over 30 trials, the sim's 0.008
over 100; z about 4.3)."""


def overflow_z(sim: Summary, real: Summary, count: int) -> float:
    """The two-proportion z statistic of the UO share, simulator against real Envoy.

    Each runner's share is its UO requests over all its requests (``count`` per trial, the same
    in every trial, so the share is the mean of the per-trial shares). Requests of one trial are
    not independent - one slow handshake makes several of them overflow - so each share's
    standard error is taken over trials (the spread of the per-trial shares over the square root
    of their number: a cluster-robust error, trials being independent) and never below the
    binomial error of the pooled share over the requests (which a runner whose trials all came out
    the same, as three clients nearly always do, would otherwise put at zero)."""
    n_sim, n_real = len(sim.shares), len(real.shares)
    pooled = (sim.mean * n_sim + real.mean * n_real) / (n_sim + n_real)
    binomial = math.sqrt(pooled * (1 - pooled) * (1 / (n_sim * count) + 1 / (n_real * count)))
    clustered = math.hypot(sim.sem, real.sem)
    error = max(binomial, clustered)
    diff = sim.mean - real.mean
    if error == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / error
