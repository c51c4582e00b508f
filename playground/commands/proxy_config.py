"""``meshplay proxy-config {listeners|routes|clusters|endpoints|all} [POD] [PATH...]``

Shows an Envoy's configuration in the tables ``istioctl proxy-config`` prints (``-o json|yaml``
for the raw Envoy dicts). POD is a pod (``product-v1-0``), ``pod.namespace`` or ``deploy/NAME``
(the Deployment's first pod), as istioctl takes it; ``--proxy`` says the same (a workload name
such as ``product-v1`` works there too).

With PATH: the configuration meshplay's translator generates. PATH may be a lesson folder (the
mesh after ``--step``, default the last step; ``--app`` runs it on another app), an app folder
(``lessons/apps/ecommerce``) or YAML files and folders (``--app`` adds an app's manifests under
them). Without PATH (or with ``--live``): what the
running Envoy of the mesh ``meshplay up`` started really holds, read from its admin
``/config_dump``, as istioctl reads a cluster's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mesh.diagnostics import Level, render
from mesh.envoy import ProxyConfig, translate_proxy
from mesh.runner import RunnerError
from mesh.topology import ProxyKind, build_topology
from playground.commands.proxy_live import kube_live, live_proxy_config, local_live
from playground.commands.proxy_tables import format_table, render_proxy_config
from playground.commands.proxy_targets import find_pod, split_targets
from playground.inputs import InputError, mesh_resources

__all__ = [
    "find_pod",
    "format_table",
    "live_proxy_config",
    "register",
    "render_proxy_config",
    "split_targets",
]

KINDS = ("listeners", "routes", "clusters", "endpoints", "all")


def register(sub: Any) -> None:
    """Add the ``proxy-config`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "proxy-config",
        aliases=["pc"],
        help="show the Envoy config meshplay generates for a proxy (like istioctl proxy-config)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("kind", choices=KINDS, help="which part of the config to show")
    p.add_argument(
        "targets",
        nargs="*",
        metavar="[POD] [PATH]",
        help="the proxy (pod, pod.namespace or deploy/NAME), then lesson/app folders or YAML; "
        "no PATH: the running mesh (meshplay up)",
    )
    p.add_argument("--proxy", metavar="POD", help="the proxy, when not given as POD")
    p.add_argument(
        "--app",
        help="app folder or name: under plain YAML input, or instead of a lesson's own app",
    )
    p.add_argument("--step", help="lesson step (name or 1-based number; default: the last)")
    p.add_argument("-o", "--output", choices=("short", "yaml", "json"), default="short")
    p.add_argument(
        "--live",
        action="store_true",
        help="read the running Envoy's /config_dump (a mesh started by meshplay up), also when "
        "PATH is given",
    )
    p.add_argument("--kube", action="store_true",
                   help="read the pod's Envoy on a cluster (kubectl exec into istio-proxy)")  # fmt: skip
    p.add_argument("--context", default="", help="kubeconfig context for --kube")
    p.add_argument(
        "--namespace", default="shop", help="namespace of the pod for --kube (default: shop)"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        wanted, paths = split_targets(args.targets, args.proxy)
        if args.kube:
            proxy: ProxyConfig | None = kube_live(wanted, args)
        elif args.live or not paths:
            proxy = local_live(wanted)
        else:
            proxy = _translated(wanted, paths, args)
    except (InputError, LookupError, OSError, RunnerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if proxy is None:
        return 2
    print(render_proxy_config(proxy, args.kind, args.output))
    return 0


def _translated(wanted: str, paths: list[str], args: argparse.Namespace) -> ProxyConfig | None:
    """The translator's configuration of the proxy ``wanted`` in the mesh PATHs describe (None
    after printing the diagnostics that stop it)."""
    resources, diagnostics = mesh_resources(paths, app=args.app, step=args.step)
    errors = [d for d in diagnostics if d.severity is Level.ERROR]
    if errors:
        print(render(errors), file=sys.stderr)
        return None
    topology = build_topology(resources)
    pod = find_pod(topology.pods, wanted)
    proxied = sorted(p.name for p in topology.pods if p.proxy is not ProxyKind.NONE)
    if pod is None or pod.proxy is ProxyKind.NONE:
        why = "has no sidecar" if pod is not None else "not found"
        raise InputError(f"proxy {wanted!r} {why}; proxies: {', '.join(proxied)}")
    return translate_proxy(resources, topology, pod.name)
