"""``meshplay cluster check|up|down``: get a Kubernetes cluster with Istio ready for lessons.

``check`` lists what the ``kube`` runner needs and what is missing, each with the command that
fixes it (exit 0 when nothing required is missing, 1 otherwise; 1 with one line when no cluster
answers). ``up`` builds the services image, loads it into a kind cluster's nodes (or pushes it
to ``--registry``), adds meshplay's access-log providers to the mesh config and applies the app
with its Telemetry (``--monitoring``: and Prometheus), then waits until every pod and sidecar is
ready. ``down`` deletes exactly what meshplay applied. See docs/kube-runner.md.

``check --lesson LESSON`` checks the context(s) a lesson runs on: for a multi-cluster lesson,
``--context CLUSTER=CONTEXT`` for each of its clusters, each checked as the primary the lesson
declares (network label, istiod's cluster ID, east-west gateway, remote secrets; see
docs/multicluster.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mesh.runner import RunnerError

__all__ = ["register"]

DEFAULT_APP = Path("lessons/apps/ecommerce")


def register(sub: Any) -> None:
    """Add ``cluster check|up|down``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "cluster",
        help="prepare a Kubernetes cluster with Istio for the kube runner (check, up, down)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, text in (
        ("check", "what the kube runner needs, and what is missing"),
        ("up", "build and load the image, apply the app and the mesh settings, wait until ready"),
        ("down", "delete everything meshplay applied"),
    ):
        v = verbs.add_parser(name, help=text, description=text)
        v.add_argument(
            "--context",
            default=[] if name == "check" else "",
            action="append" if name == "check" else "store",
            metavar="[CLUSTER=]CONTEXT" if name == "check" else "CONTEXT",
            help="kubeconfig context (default: the current one)",
        )
        v.add_argument(
            "--namespace", default="", help="namespace of the app (default: the app's own)"
        )
        if name != "down":
            v.add_argument("--app", type=Path, default=DEFAULT_APP, help="app folder")
        if name == "check":
            v.add_argument(
                "--lesson",
                type=Path,
                help="check for this lesson (its app; a multi-cluster lesson: every cluster, "
                "--context CLUSTER=CONTEXT each)",
            )
        if name == "up":
            v.add_argument("--monitoring", action="store_true", help="also apply Prometheus")
            v.add_argument(
                "--registry", default="", help="push the image here (not a kind cluster)"
            )
            v.add_argument("--no-build", action="store_true", help="use the image as it is")
        v.set_defaults(handler=_run)


def _say(text: str) -> None:
    print(text, flush=True)


def _run(args: argparse.Namespace) -> int:
    from cluster.kube.api import KubeApi, KubeError

    if args.verb == "check" and (args.lesson is not None or len(args.context) > 1):
        return _check_lesson(args)
    if args.verb == "check":
        args.context = args.context[0] if args.context else ""
    try:
        api = KubeApi.connect(args.context)
        version = api.version()
    except KubeError as exc:
        print(f"no Kubernetes cluster: {exc}", file=sys.stderr)
        return 1
    del version
    try:
        if args.verb == "check":
            return _check(api, args)
        if args.verb == "up":
            return _up(api, args)
        return _down(api)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        api.close()


def _namespace(args: argparse.Namespace) -> str:
    from mesh.app import load_behavior

    if args.namespace:
        return str(args.namespace)
    return load_behavior(args.app / "behavior.yaml").namespace


def _check(api: Any, args: argparse.Namespace) -> int:
    from cluster.kube.admin import check

    findings = check(api, _namespace(args))
    for f in findings:
        print(f.line())
    return 0 if all(f.ok or not f.required for f in findings) else 1


def _check_lesson(args: argparse.Namespace) -> int:
    """``check --lesson``: every context the lesson runs on (exit 2: contexts that do not fit
    the lesson; 1: something required missing, or no cluster)."""
    from cluster.kube.admin import check
    from cluster.kube.api import KubeApi, KubeError
    from cluster.kube.multicluster import cluster_contexts, declared_clusters, multicluster_problems
    from mesh.diagnostics import DiagnosticError, render
    from mesh.lesson import load_lesson

    if args.lesson is None:
        print("error: several --context values: name the lesson they are for (--lesson)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        lesson = load_lesson(args.lesson)
        contexts = cluster_contexts(lesson, args.context)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mc = declared_clusters(lesson)
    namespace = args.namespace or lesson.app.behavior.namespace
    ok = True
    for name, context in contexts.items():
        try:
            api = KubeApi.connect(context)
            findings = check(api, namespace)
            cluster = mc.cluster(name) if mc is not None else None
            problems = (
                multicluster_problems(
                    api, mc, cluster, [c.name for c in mc.clusters if c.name != name]
                )
                if mc is not None and cluster is not None
                else []
            )
            api.close()
        except KubeError as exc:
            print(f"{name or 'cluster'}: no Kubernetes cluster: {exc}", file=sys.stderr)
            ok = False
            continue
        if mc is not None:
            print(f"== {name}: context {api.context}")
        for f in findings:
            print(f.line())
        for problem in problems:
            print(f"\u2718 {problem}")
        if mc is not None and not problems:
            print(f"\u2714 {name} of the mesh: network, istiod's cluster ID, east-west gateway, "
                  "remote secrets of the other clusters")  # fmt: skip
        ok = ok and not problems and all(f.ok or not f.required for f in findings)
    return 0 if ok else 1


def _up(api: Any, args: argparse.Namespace) -> int:
    from cluster.kube import admin, image
    from mesh.app import load_app

    app = load_app(args.app)
    context = api.context
    pushed = ""
    if not args.no_build:
        image.build_image(admin.repo_root(), _say)
    kind = image.kind_cluster_name(context)
    if args.registry:
        pushed = image.push_image(args.registry, _say)
    elif kind:
        image.load_into_kind(kind, _say)
    elif not args.no_build:
        print(f"error: context {context} is not a kind cluster: pass --registry REGISTRY so its "
              "nodes can pull the image", file=sys.stderr)  # fmt: skip
        return 2
    admin.up(api, app, _namespace(args), monitoring=args.monitoring, image=pushed, report=_say)
    print(f"ready: meshplay run lessons/01-request-routing --runner kube --context {context}")
    return 0


def _down(api: Any) -> int:
    from cluster.kube.admin import down

    count = down(api, _say)
    print(f"deleted {count} objects meshplay had applied")
    return 0
