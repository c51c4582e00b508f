"""``meshplay cluster check|up|down``: get a Kubernetes cluster with Istio ready for lessons.

``check`` lists what the ``kube`` runner needs and what is missing, each with the command that
fixes it (exit 0 when nothing required is missing, 1 otherwise; 1 with one line when no cluster
answers). ``up`` builds the services image, loads it into a kind cluster's nodes (or pushes it
to ``--registry``), adds meshplay's access-log providers to the mesh config and applies the app
with its Telemetry (``--monitoring``: and Prometheus), then waits until every pod and sidecar is
ready. ``down`` deletes exactly what meshplay applied. See docs/kube-runner.md.
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
            "--context", default="", help="kubeconfig context (default: the current one)"
        )
        v.add_argument(
            "--namespace", default="", help="namespace of the app (default: the app's own)"
        )
        if name != "down":
            v.add_argument("--app", type=Path, default=DEFAULT_APP, help="app folder")
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
