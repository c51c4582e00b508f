"""``KubeRunner``: lessons on real Istio in a real Kubernetes cluster; ``--dry-run``'s plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cluster.kube.executor import KubeExecutor
from cluster.kube.live import Timeouts
from mesh.engine import LessonRunner, run_lesson
from mesh.lesson import Lesson
from mesh.runner import RunOptions

__all__ = ["KubeRunner", "dry_run_plan"]


class KubeRunner(LessonRunner):
    """Runs lessons on real Istio in a real cluster (the ``kube`` runner)."""

    def __init__(
        self,
        context: str = "",
        namespace: str = "",
        *,
        dry_run: bool = False,
        kubeconfig: str | None = None,
        timeouts: Timeouts | None = None,
        report: Callable[[str], None] | None = None,
        prometheus_url: str = "",
        contexts: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            "kube",
            lambda: KubeExecutor(
                context,
                namespace,
                dry_run=dry_run,
                kubeconfig=kubeconfig,
                timeouts=timeouts,
                report=report,
                prometheus_url=prometheus_url,
                contexts=contexts,
            ),
        )


def dry_run_plan(
    lesson: Lesson,
    options: RunOptions,
    namespace: str = "",
    contexts: Mapping[str, str] | None = None,
) -> str:
    """What ``--dry-run`` prints: the whole plan of running ``lesson`` on a cluster (on one
    context per cluster for a multi-cluster lesson: ``contexts``, cluster -> context)."""
    executor = KubeExecutor(namespace=namespace, dry_run=True, contexts=contexts)
    run_lesson(executor, lesson, options)
    return executor.plan_text()
