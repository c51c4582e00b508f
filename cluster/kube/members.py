"""Building a run's :class:`~cluster.kube.fleet.Fleet`: one member per kube context.

Live: each context is connected and checked before anything is applied: istiod, Istio's CRDs
and meshplay's access-log providers (:func:`cluster.kube.admin.require_ready`) and, for a
multi-cluster lesson, that the context is the primary the lesson declares (its network label,
istiod's cluster ID, its east-west gateway, the remote secrets of the other clusters:
:func:`cluster.kube.multicluster.multicluster_problems`). Dry run: one
:class:`~cluster.kube.plan.PlanCluster` per context writing into one shared plan, each verb line
prefixed with its cluster and context, headed by the install each context needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from cluster.kube.api import KubeApi
from cluster.kube.fleet import Fleet, Member
from cluster.kube.live import LiveCluster, Timeouts
from cluster.kube.manifests import Manifest
from cluster.kube.multicluster import install_plan, lesson_exposes_services, multicluster_problems
from cluster.kube.plan import PlanBook, PlanCluster
from cluster.kube.traffic import generator_image, generator_note
from mesh.lesson import Lesson
from mesh.model.multicluster import MultiCluster
from mesh.runner import RunnerError

__all__ = ["connect_fleet", "plan_fleet"]


def connect_fleet(
    contexts: Mapping[str, str],
    mc: MultiCluster | None,
    namespace: str,
    *,
    kubeconfig: str | None,
    timeouts: Timeouts,
    report: Callable[[str], None],
    apis: list[KubeApi],
) -> Fleet:
    """A live member per context, each checked ready (RunnerError with the fixes). Every API
    client opened is appended to ``apis`` (closed by the caller, also after an error)."""
    from cluster.kube.admin import require_ready

    members: dict[str, Member] = {}
    for name, context in contexts.items():
        api = KubeApi.connect(context, kubeconfig)
        apis.append(api)
        require_ready(api, namespace)
        if mc is not None:
            cluster = mc.cluster(name)
            assert cluster is not None
            others = [c.name for c in mc.clusters if c.name != name]
            problems = multicluster_problems(api, mc, cluster, others)
            if problems:
                raise RunnerError(
                    f"context {api.context} is not ready as {name} of a multi-primary mesh "
                    "(docs/multicluster.md):\n" + "\n".join(f"  {p}" for p in problems)
                )
        members[name] = LiveCluster(api, namespace, timeouts, report)
    return Fleet(members, mc)


def plan_fleet(
    lesson: Lesson,
    contexts: Mapping[str, str],
    mc: MultiCluster | None,
    namespace: str,
    app: Sequence[Manifest],
    *,
    timeouts: Timeouts,
) -> Fleet:
    """A plan member per context, the plan headed by what the run is and, for a multi-cluster
    lesson, the install each context needs (:func:`~cluster.kube.multicluster.install_plan`)."""
    book = PlanBook()
    members: dict[str, Member] = {}
    for name, context in contexts.items():
        prefix = f"[{name}: {context}] " if mc is not None else ""
        members[name] = PlanCluster(namespace, app, timeouts, book=book, prefix=prefix)
    fleet = Fleet(members, mc)
    placed = fleet.by_member(app)
    for name, member in members.items():  # each context knows only its own pods
        assert isinstance(member, PlanCluster)
        member.app = placed[name]
    plan = members[fleet.home]
    assert isinstance(plan, PlanCluster)
    plan.note(f"# meshplay run {lesson.path.name} --runner kube --dry-run: the plan, step by step")
    plan.note(f"# namespace {namespace}; nothing below was sent to a cluster")
    if mc is None:
        if generator_image(None, app)[1]:  # an app without meshplay's image: say what runs
            plan.note(generator_note(lesson, app))
        return fleet
    plan.note(
        "# clusters: "
        + ", ".join(
            f"{c.name} = context {contexts[c.name]} (network {c.network or '-'})"
            for c in mc.clusters
        )
    )
    plan.note(
        "# records: every cluster's istio-proxy logs, each line's source_cluster or "
        "destination_cluster the cluster of the context it was read from"
    )
    plan.note(generator_note(lesson, app))
    exposed = lesson_exposes_services(lesson)
    for line in install_plan(mc, contexts, exposed_by_lesson=exposed, app=str(lesson.app.path)):
        plan.note(line)
    plan.end_section()
    return fleet
