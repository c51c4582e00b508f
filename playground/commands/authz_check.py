"""``meshplay authz-check PATH --from WORKLOAD --request 'GET /path -H k:v'``: would this request
be allowed, and which policy and rule decided?

PATH is a lesson folder (the configuration after its last step, or ``--step N``) or YAML files /
folders (with ``--app`` for the app's manifests). The request goes from WORKLOAD (a Deployment
such as ``api-gateway-v1``, an app label such as ``api-gateway``, or ``outside`` for a client
without sidecar) to ``--to SERVICE`` (default: the ``Host`` of the request) and is checked on
every pod behind that service, the way its sidecar would: PeerAuthentication (is the connection
accepted?), RequestAuthentication (``--jwt TOKEN``, keys from the policy or ``--jwks FILE``), then
the AuthorizationPolicies as Envoy RBAC. The verdict is computed from the Envoy configuration the
sidecars run, so it is what a real Envoy decides.

Exit code: 0 allowed (on every destination pod), 1 denied, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from mesh.diagnostics import DiagnosticError, Level, render
from mesh.model import Resource
from mesh.security import AuthzVerdict, InboundRequest, check_request
from mesh.topology import MeshService, Pod, Topology, build_topology
from playground.inputs import InputError, mesh_resources

__all__ = ["parse_request", "register"]


class BadInputError(ValueError):
    """Something in the command line or the configuration cannot be used."""


def register(sub: Any) -> None:
    """Add the ``authz-check`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "authz-check",
        help="would a request be allowed by the mesh's security policies, and why",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="lesson folder, or YAML files/folders")
    p.add_argument("--from", dest="source", required=True, metavar="WORKLOAD",
                   help="calling Deployment or app, or 'outside' (no sidecar)")  # fmt: skip
    p.add_argument("--request", required=True, metavar="'METHOD PATH [-H k:v]...'")
    p.add_argument("--to", metavar="SERVICE", help="destination Service (default: the Host header)")
    p.add_argument("--port", type=int, help="Service port (default: the Service's first port)")
    p.add_argument("--jwt", metavar="TOKEN", help="sent as 'Authorization: Bearer TOKEN'")
    p.add_argument("--jwks", metavar="FILE", help="JWKS JSON for RequestAuthentication jwksUri")
    p.add_argument(
        "--app",
        help="app folder or name: under plain YAML input, or instead of a lesson's own app",
    )
    p.add_argument("--step", type=int, help="lesson state after this step (1-based; default last)")
    p.add_argument("-o", "--output", choices=("text", "json"), default="text")
    p.set_defaults(handler=_run)


def parse_request(text: str) -> tuple[str, str, dict[str, str]]:
    """``'GET /api -H x-user:jason -H "k: v"'`` -> ``("GET", "/api", {"x-user": "jason", "k": "v"})``."""
    words = shlex.split(text)
    if len(words) < 2:
        raise BadInputError(f"--request {text!r}: expected 'METHOD PATH [-H name:value]...'")
    method, path, rest = words[0].upper(), words[1], words[2:]
    if not path.startswith("/"):
        raise BadInputError(f"--request {text!r}: the path must start with '/'")
    headers: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        if flag not in ("-H", "--header") or not rest:
            raise BadInputError(f"--request {text!r}: unexpected {flag!r} (use -H name:value)")
        name, sep, value = rest.pop(0).partition(":")
        if not sep or not name.strip():
            raise BadInputError(f"--request {text!r}: header needs 'name:value'")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _resources(args: argparse.Namespace) -> tuple[Resource, ...]:
    try:
        resources, found = mesh_resources(args.paths, app=args.app, step=args.step)
    except InputError as exc:
        raise BadInputError(str(exc)) from exc
    errors = [d for d in found if d.severity is Level.ERROR]
    if errors:
        raise DiagnosticError(errors)
    return resources


def _source(topology: Topology, name: str) -> Pod | None:
    if name == "outside":
        return None
    workload = topology.workload(name) or next(
        (w for w in topology.workloads if w.labels.get("app") == name), None
    )
    if workload is None:
        known = sorted({w.name for w in topology.workloads})
        raise BadInputError(
            f"--from {name!r}: no such Deployment or app (known: {', '.join(known)})"
        )
    pods = topology.pods_of(workload)
    if not pods:
        raise BadInputError(f"--from {name!r}: the Deployment has no replicas")
    return pods[0]


def _service(topology: Topology, name: str, namespace: str) -> MeshService:
    host = name.split(":", 1)[0]
    candidates = [topology.resolve_host(host, namespace), host]
    for s in topology.services:
        if s.hostname in candidates or (s.name == host and not s.from_service_entry):
            return s
    raise BadInputError(f"--to {name!r}: no such Service")


def _verdicts(
    args: argparse.Namespace,
) -> tuple[list[tuple[Pod, AuthzVerdict]], str, str, dict[str, str]]:
    method, path, headers = parse_request(args.request)
    if args.jwt:
        headers["authorization"] = f"Bearer {args.jwt}"
    resources = _resources(args)
    topology = build_topology(resources)
    source = _source(topology, args.source)
    target = args.to or headers.get("host")
    if not target:
        raise BadInputError("say where the request goes: --to SERVICE or -H host:SERVICE")
    service = _service(topology, target, source.namespace if source else "default")
    port = service.port(args.port) if args.port else (service.ports[0] if service.ports else None)
    if port is None:
        raise BadInputError(f"{service.name} has no port {args.port}")
    headers.setdefault("host", f"{service.name}.{service.namespace}:{port.port}")
    pods = topology.endpoints(service)
    if not pods:
        raise BadInputError(f"Service {service.name} selects no pods")
    jwks = Path(args.jwks).read_text() if args.jwks else None
    request = InboundRequest(method=method, path=path, authority=headers["host"],
                             headers=headers, port=port.target_port, source=source)  # fmt: skip
    out = [
        (
            pod,
            check_request(
                pod,
                request,
                resources,
                topology,
                now=time.time(),
                jwks_resolver=(lambda _uri: jwks) if jwks else None,
            ),
        )
        for pod in pods
    ]
    return out, method, path, headers


def _decided_by(v: AuthzVerdict) -> str:
    if v.stage == "mtls":
        return "PeerAuthentication (the connection is refused)"
    if v.stage == "jwt":
        return "RequestAuthentication (jwt_authn)"
    found = v.policy
    if found is None:
        return "default (no policy matched)" if v.allowed else "default deny (ALLOW policies exist)"
    ns, name, rule = found
    action = v.rbac.action if v.rbac is not None else ""
    return f"AuthorizationPolicy {ns}/{name} rule {rule} ({action})"


def _run(args: argparse.Namespace) -> int:
    try:
        verdicts, method, path, headers = _verdicts(args)
    except DiagnosticError as exc:
        print(render(exc.diagnostics), file=sys.stderr)
        return 2
    except (BadInputError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps([_json(pod, v) for pod, v in verdicts], indent=2))
    else:
        for pod, v in verdicts:
            word = "ALLOW" if v.allowed else "DENY"
            status = (
                ""
                if v.allowed
                else (f"  {v.status} {v.body}".rstrip() if v.status else "  connection closed")
            )
            tls = "mTLS" if v.mtls else "plaintext"
            print(
                f"{word:5}  {method} {path}  {args.source} -> {pod.name} ({headers['host']}, {tls}){status}"
            )
            print(f"       decided by: {_decided_by(v)}")
            print(f"       why: {v.reason}")
            for ref in v.not_modelled:
                print(f"       note: {ref} is CUSTOM (ext_authz), which meshplay does not model")
    return 0 if all(v.allowed for _, v in verdicts) else 1


def _json(pod: Pod, v: AuthzVerdict) -> dict[str, Any]:
    found = v.policy
    return {
        "pod": pod.name,
        "allowed": v.allowed,
        "stage": v.stage,
        "status": v.status,
        "body": v.body,
        "mtls": v.mtls,
        "policy": None
        if found is None
        else {"namespace": found[0], "name": found[1], "rule": found[2]},
        "action": v.rbac.action if v.rbac is not None else "",
        "reason": v.reason,
    }
