"""``--dry-run``: every verb of :class:`~cluster.kube.live.LiveCluster`, written down instead of done.

The executor makes the same decisions with a :class:`PlanCluster` as with a real cluster, so the
plan is the run: every apply (a lesson's resources with their YAML; the app's by reference to its
file), every delete, every wait with its bound, every knob and scale, and each step's load
generator pod with the exact job it runs. No cluster is contacted.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cluster.kube.convergence import ProxySync
from cluster.kube.generator import CONTAINER, GeneratorEvent
from cluster.kube.live import Timeouts
from cluster.kube.manifests import KNOB_PORT, PART_LABEL, Manifest, ordered_for_apply
from cluster.kube.pods import PodRef, opts_out_of_injection
from cluster.kube.records import PodFacts

__all__ = ["PlanBook", "PlanCluster"]


class PlanBook:
    """The plan's lines, shared by the :class:`PlanCluster` of every context of a run."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.section = 0


class _Lines:
    """Appends verb lines with the context's prefix (``[cluster1: kind-east] ``); YAML
    documents and notes are written as they are."""

    def __init__(self, book: PlanBook, prefix: str) -> None:
        self.book = book
        self.prefix = prefix

    def append(self, line: str) -> None:
        indented = line.startswith(" ") or not line
        self.book.lines.append(line if indented else self.prefix + line)

    def extend(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.append(line)


class PlanCluster:
    """Records the runner's verbs as text lines (:meth:`text`); with a ``prefix``, as one
    context of several writing into one shared :class:`PlanBook`."""

    def __init__(
        self, namespace: str, app: Sequence[Manifest], timeouts: Timeouts | None = None,
        *, book: PlanBook | None = None, prefix: str = "",
    ) -> None:  # fmt: skip
        self.namespace = namespace
        self.app = list(app)
        self.timeouts = timeouts or Timeouts()
        self.book = book or PlanBook()
        self.lines = _Lines(self.book, prefix)

    def text(self) -> str:
        """The plan so far."""
        return "\n".join(self.book.lines) + "\n"

    def note(self, text: str) -> None:
        """A heading or remark in the plan."""
        self.book.lines.append(text)

    def step(self, heading: str) -> None:
        """Put ``heading`` before everything since the previous step (its configuration and
        breaks came before its traffic), and start a new section."""
        self.book.lines.insert(self.book.section, heading)
        self.book.section = len(self.book.lines)

    def end_section(self) -> None:
        """What follows belongs to the next step."""
        self.book.section = len(self.book.lines)

    # -- the LiveCluster verbs -------------------------------------------------------------

    def apply(self, manifests: Sequence[Manifest]) -> dict[tuple[str, str, str], str]:
        for m in ordered_for_apply(manifests):
            where = f"  # {m.source}" if m.source else ""
            if m.labels().get(PART_LABEL) == "app":
                self.lines.append(f"apply {m.ref}{where}")
                continue
            self.lines.append(f"apply {m.ref} (server-side, field manager meshplay){where}")
            self.lines.append("  ---")
            self.lines.extend("  " + line for line in m.yaml().rstrip().splitlines())
            self.lines.append("  ---")
        return {m.key: "<new>" for m in manifests}

    def delete(self, manifests: Sequence[Manifest]) -> None:
        for m in reversed(ordered_for_apply(manifests)):
            self.lines.append(f"delete {m.ref}")

    def wait_rollout(self, deployments: Sequence[Manifest]) -> None:
        if not deployments:
            return
        names = ", ".join(d.name for d in deployments)
        bare = [d.name for d in deployments if opts_out_of_injection(d)]
        without = (
            f'; {", ".join(bare)} without one (sidecar.istio.io/inject: "false")' if bare else ""
        )
        self.lines.append(
            f"wait until ready (every pod running, istio-proxy included{without}; at most "
            f"{self.timeouts.rollout_s:g}s): Deployment {deployments[0].namespace}/{names}"
        )

    def sync_state(self) -> dict[str, ProxySync]:
        return {}

    def wait_converged(
        self,
        applied: Mapping[tuple[str, str, str], str],
        deleted: Iterable[tuple[str, str, str]],
        before: Mapping[str, ProxySync],
    ) -> None:
        held = ", ".join(f"{k[0]} {k[1]}/{k[2]}" for k in applied) or "-"
        gone = ", ".join(f"{k[0]} {k[1]}/{k[2]}" for k in deleted) or "-"
        self.lines.append(
            f"wait until the config reached the proxies (at most {self.timeouts.converge_s:g}s): "
            f"istiod /debug/configz holds [{held}] and not [{gone}], then /debug/syncz shows "
            "every proxy's last push acknowledged"
        )

    def workload_pods(self, deployment: Manifest) -> list[PodRef]:
        replicas = int(deployment.body.get("spec", {}).get("replicas", 1))
        return [
            PodRef(f"{deployment.name}-<pod {i + 1}>", deployment.namespace, "", {})
            for i in range(replicas)
        ]

    def set_knobs(self, pods: Sequence[PodRef], container: str, body: Mapping[str, Any]) -> None:
        for pod in pods:
            self.lines.append(
                f"exec {pod.namespace}/{pod.name} ({container}): python -m cluster.kube.loadgen "
                f"knobs {KNOB_PORT} '{json.dumps(dict(body), sort_keys=True)}'"
            )

    def proxy_memory_mb(self, pod: PodRef) -> float | None:
        """Read after the step's traffic: the line ends the step's section."""
        self.lines.append(
            f"exec {pod.namespace}/{pod.name} (istio-proxy): pilot-agent request GET memory  "
            "# proxy_config memory_mb: Envoy's heap in use (allocated, MiB)"
        )
        self.end_section()
        return None

    def kill(self, deployment: Manifest, pods: Sequence[PodRef], replicas: int) -> None:
        names = ", ".join(p.name for p in pods)
        self.lines.append(
            f"kill {names}: annotate controller.kubernetes.io/pod-deletion-cost=-10000, "
            f"then scale Deployment {deployment.namespace}/{deployment.name} to {replicas}"
        )

    def scale(self, deployment: Manifest, replicas: int) -> None:
        self.lines.append(
            f"scale Deployment {deployment.namespace}/{deployment.name} to {replicas}"
        )

    def endpoints(self, service: Mapping[str, Any]) -> list[str]:
        selector = service.get("spec", {}).get("selector") or {}
        out: list[str] = []
        for d in self.app:
            if d.kind != "Deployment":
                continue
            labels = (
                d.body.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}
            )
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                replicas = int(d.body.get("spec", {}).get("replicas", 1))
                out.extend(f"<IP of {d.name} pod {i + 1}>" for i in range(replicas))
        return out

    def run_generator(
        self, pod: Manifest, on_event: Callable[[GeneratorEvent], None], cancel: threading.Event,
        timeout_s: float,
    ) -> None:  # fmt: skip
        self.apply([pod])
        self.lines.append(
            f'follow the log of {pod.namespace}/{pod.name} ({CONTAINER}) until its "done" line '
            f'(at most {timeout_s:g}s); the step\'s events are timed from its "started" line'
        )

    def prometheus(self, promql: str, at: float) -> list[dict[str, Any]] | None:
        promql = re.sub(r"\[\d+s\]", "[<seconds since the first traffic>s]", promql)
        self.lines.append(
            f"wait {self.timeouts.scrape_s:g}s for Prometheus to scrape, then query it (when the cluster "
            f"has one) through the API server's service proxy and set each edge's count beside "
            f"the records': {promql}"
        )
        return None

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return [m.body for m in self.app if m.kind == "Service"]

    def proxy_logs(
        self, pods: Iterable[Mapping[str, Any]], since_s: float | None
    ) -> list[tuple[PodFacts, str]]:
        names = [str(p.get("metadata", {}).get("name", "")) for p in pods]
        if names:
            self.lines.append(f"read the istio-proxy log of {', '.join(names)}")
        return []

    def mesh_pods(self) -> list[dict[str, Any]]:
        self.lines.append(
            f"wait {self.timeouts.settle_s:g}s (requests in flight, Envoy's access-log flush), then "
            f"read the istio-proxy log of every pod in {self.namespace} and of istio-system's "
            "ingress gateway since the step began; parse the JSON lines into RequestRecords"
        )
        return []
