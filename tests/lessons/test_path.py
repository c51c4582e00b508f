"""The learning path keeps its promises (issue 20): every lesson and exercise on it names the
Istio page it mirrors and the Istio version its behaviour is pinned to, the page is one that
exists, and every lesson runs on sim and on each other runner unless a reason says why not.

The pages below were checked against istio/istio.io (``content/en/docs/<page>/index.md``; the
``#anchor`` against the page's headings) and kubernetes.io. A lesson that names another page
fails here until someone has checked it and added it: a page that does not exist (as
``ops/best-practices/performance/`` did) is a dead link for the learner.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mesh.exercise import find_exercises, load_exercise
from mesh.lesson import find_lessons, load_lesson
from mesh.path import LearningPath, path_of

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"
ISTIO_DOCS = "https://istio.io/latest/docs/"
PINNED = "1.28"
"""The Istio version every lesson follows today (istiod's translation in mesh.envoy)."""

CHECKED_PAGES = frozenset({
    "concepts/traffic-management/#load-balancing-options",
    "concepts/traffic-management/#retries",
    "concepts/traffic-management/#circuit-breakers",
    "concepts/traffic-management/#network-resilience-and-testing",
    "concepts/traffic-management/#sidecars",
    "ops/deployment/architecture/",
    "ops/deployment/performance-and-scalability/",
    "setup/getting-started/",
    "setup/install/multicluster/before-you-begin/",
    "setup/install/multicluster/verify/",
    "tasks/traffic-management/request-routing/",
    "tasks/traffic-management/traffic-shifting/",
    "tasks/traffic-management/request-timeouts/",
    "tasks/traffic-management/fault-injection/",
    "tasks/traffic-management/circuit-breaking/",
    "tasks/traffic-management/mirroring/",
    "tasks/traffic-management/ingress/ingress-control/",
    "tasks/traffic-management/egress/egress-control/",
    "tasks/traffic-management/egress/egress-gateway-tls-origination/",
    "tasks/traffic-management/locality-load-balancing/failover/",
    "tasks/security/authentication/mtls-migration/",
    "tasks/security/authorization/authz-http/",
    "tasks/security/authorization/authz-jwt/",
    "tasks/policy-enforcement/rate-limit/",
    "tasks/observability/metrics/querying-metrics/",
    "tasks/observability/distributed-tracing/overview/",
})  # fmt: skip
OTHER_PAGES = frozenset(
    {"https://kubernetes.io/docs/concepts/services-networking/network-policies/"}
)

WHY_NOT: dict[tuple[str, str], str] = {
    # (lesson, runner it does not list): why, as `meshplay run --runner R` says it
    ("15-network-policy", "local"): "NetworkPolicy needs a CNI to be enforced; local has none",
    ("16-egress-registry-only", "local"): "protocol: tcp traffic to an outside IP; local only targets 127.0.0.1",
    ("23-egress-gateway-tls-origination", "kube"): "its traffic goes to rates.partner.example, a TLS server the local runner starts; a cluster has no such host",
}  # fmt: skip
"""Runners a path lesson does not list, and why. A lesson may instead say why on its own
``runners:`` line (``runners: [sim, local]  # kube: ...``)."""


def _path() -> LearningPath:
    path = path_of(LESSONS, [p.name for p in find_lessons(LESSONS)])
    assert path is not None, "lessons/path.yaml is missing"
    return path


PATH = _path()
PATH_EXERCISES = [name for phase in PATH.phases for name in phase.exercises]


def _assert_mirrors_a_checked_page(name: str, mirrors: str) -> None:
    if mirrors in OTHER_PAGES:
        return
    assert mirrors.startswith(ISTIO_DOCS), f"{name}: mirrors {mirrors!r} is not an istio.io page"
    page = mirrors.removeprefix(ISTIO_DOCS)
    assert page in CHECKED_PAGES, (
        f"{name}: mirrors {mirrors}, a page nobody has checked exists: check it on istio.io "
        "(istio/istio.io content/en/docs/...) and add it to CHECKED_PAGES"
    )


@pytest.mark.parametrize("name", PATH.lessons)
def test_a_path_lesson_names_a_real_istio_page_and_the_pinned_version(name: str) -> None:
    spec = load_lesson(LESSONS / name).spec
    _assert_mirrors_a_checked_page(name, spec.mirrors)
    assert spec.istio == PINNED, f"{name}: istio {spec.istio!r}, the path is pinned to {PINNED}"


@pytest.mark.parametrize("name", PATH_EXERCISES)
def test_a_path_exercise_names_a_real_istio_page_and_the_pinned_version(name: str) -> None:
    spec = load_exercise(LESSONS / "exercises" / name).spec
    _assert_mirrors_a_checked_page(name, spec.mirrors)
    assert spec.istio == PINNED, f"{name}: istio {spec.istio!r}, the path is pinned to {PINNED}"


def test_every_exercise_is_on_the_path() -> None:
    """An exercise outside path.yaml would never be offered in phase order."""
    assert sorted(PATH_EXERCISES) == sorted(p.name for p in find_exercises(LESSONS / "exercises"))


def _reason_on_runners_line(name: str, runner: str) -> bool:
    text = (LESSONS / name / "lesson.yaml").read_text(encoding="utf-8")
    line = re.search(r"^runners:.*$", text, flags=re.M)
    return line is not None and re.search(rf"#.*\b{runner}: \S", line.group(0)) is not None


@pytest.mark.parametrize("name", PATH.lessons)
def test_a_path_lesson_runs_on_sim_and_says_why_not_elsewhere(name: str) -> None:
    """Issue 20: every lesson on sim, and on local and kube where the runner can. A runner
    left out without a reason is a gap; a reason kept for a runner now listed is stale."""
    runners = load_lesson(LESSONS / name).spec.runners
    assert "sim" in runners, name
    for runner in ("local", "kube"):
        explained = (name, runner) in WHY_NOT or _reason_on_runners_line(name, runner)
        if runner in runners:
            assert (name, runner) not in WHY_NOT, f"{name} lists {runner}: drop its reason"
        else:
            assert explained, f"{name} does not list {runner}: list it, or say why not"


def test_the_reasons_are_for_lessons_on_the_path() -> None:
    assert {name for name, _ in WHY_NOT} <= set(PATH.lessons)
