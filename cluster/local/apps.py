"""App processes: one per replica, launched from the Deployment's container ``command`` + ``env``.

The kubelet would pull the image and run the container with its env; here the container's command
(``python -m services.product``) runs as a process from the repository root with the
interpreter running meshplay. What Kubernetes gives a container for free is set explicitly:

* ``HOST``/``PORT``: the app listens on an allocated 127.0.0.1 port instead of the pod IP's 8080;
* ``ADMIN_PORT``: a second port for ``/admin/knobs`` that stays open while ``refuse`` is on;
* ``DATA_DIR``: a folder per replica in the run directory;
* ``HTTP_PROXY``: the pod's sidecar outbound listener. In a pod, iptables sends every outbound
  connection to the sidecar; here the app's HTTP client sends it there as to a proxy, and the
  sidecar picks the route by the Host header (``product:8080``) exactly as after capture;
* Downward API values (``valueFrom.fieldRef``): ``metadata.name`` (the pod name, e.g.
  ``product-v2-0``), ``metadata.namespace``, ``metadata.labels['KEY']`` and
  ``spec.serviceAccountName`` are filled in from the pod as the kubelet would; other
  ``valueFrom`` sources (secrets, config maps, resources) are left out;
* an app without code of the project's runs as the behaviour server
  (``python -m services.behavior_server``, see docs/app-model.md) with ``SERVICE_NAME``,
  ``VERSION``, ``POD_NAME`` and ``BEHAVIOR_FILE`` (its declaration as JSON, :func:`declaration`);
* ``DATABASE_URL``/``REDIS_URL`` are dropped: PostgreSQL and Redis run outside the mesh
  (``sidecar.istio.io/inject: "false"``) and are not started locally, so the services use their
  SQLite default and no cache. When the caller does run them (``external``: the in-cluster
  ``host:port`` such as ``postgres:5432`` mapped to a local ``127.0.0.1:PORT``), a URL naming
  one of them is kept, pointed at the local address: every replica then shares that database
  and cache, as on a cluster.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mesh.app import AppBehavior, Call, Parallel, ServiceBehavior
from mesh.diagnostics import Diagnostic
from mesh.model import Resource
from mesh.model.kubernetes import Container, Deployment, EnvVar
from mesh.topology import Pod, ProxyKind, Topology, build_topology

__all__ = [
    "BEHAVIOR_SERVER_ARGV",
    "BEHAVIOR_SERVER_LABEL",
    "ROOT",
    "app_argv",
    "app_env",
    "behavior_server",
    "declaration",
    "declared_behavior",
    "external_url",
    "is_python_service",
    "unknown_service_package",
    "unrunnable",
    "uses_behavior_server",
    "write_declaration",
]

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: services run as ``python -m services.<pkg>`` from here."""

DROPPED_ENV = ("DATABASE_URL", "REDIS_URL")
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def is_python_service(container: Container) -> bool:
    """Whether the container runs one of our services (``python -m services.<pkg>``)."""
    argv = (*container.command, *container.args)
    return len(argv) >= 3 and argv[1] == "-m" and argv[2].startswith("services.")


def app_argv(container: Container) -> list[str]:
    """``command + args`` with ``python`` replaced by this interpreter."""
    argv = [*container.command, *container.args]
    if argv and Path(argv[0]).name in {"python", "python3"}:
        argv[0] = sys.executable
    return argv


_LABEL_FIELD = re.compile(r"^metadata\.labels\['([^']+)'\]$")


def downward_value(var: EnvVar, pod: Pod) -> str | None:
    """The value the kubelet gives an env var with ``valueFrom.fieldRef``, for the fields a
    local pod has; None for any other ``valueFrom``."""
    source = var.value_from
    ref = source.get("fieldRef") if isinstance(source, Mapping) else None
    path = ref.get("fieldPath") if isinstance(ref, Mapping) else None
    if not isinstance(path, str):
        return None
    fields = {
        "metadata.name": pod.name,
        "metadata.namespace": pod.namespace,
        "spec.serviceAccountName": pod.service_account,
    }
    if path in fields:
        return fields[path]
    label = _LABEL_FIELD.match(path)
    return pod.labels.get(label.group(1)) if label else None


def external_url(url: str, external: Mapping[str, str]) -> str | None:
    """``url`` with its ``host:port`` replaced by the local address ``external`` maps it to
    (``postgresql://shop:shop@postgres:5432/shop`` -> ``...@127.0.0.1:5433/shop``), or None
    when it names a server that does not run here."""
    try:
        parts = urlsplit(url)
        where = f"{parts.hostname}:{parts.port}"
    except ValueError:
        return None
    local = external.get(where)
    if local is None:
        return None
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{local}" if user else local
    return urlunsplit(parts._replace(netloc=netloc))


def app_env(
    container: Container,
    *,
    port: int,
    admin_port: int,
    data_dir: Path,
    http_proxy: str | None,
    seed: int,
    base: Mapping[str, str] | None = None,
    pod: Pod | None = None,
    external: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The process environment of one replica (see the module docstring); ``pod`` fills in
    Downward API values, ``external`` maps servers outside the mesh to local addresses."""
    source = os.environ if base is None else base
    env = {
        k: v
        for k, v in source.items()
        if k.upper() not in _PROXY_VARS and not k.upper().endswith("_URL")
    }
    for var in container.env:
        value = var.value if var.value_from is None else None
        if value is None and pod is not None:
            value = downward_value(var, pod)
        if value is not None:
            env[var.name] = value
    for name in DROPPED_ENV:
        local = external_url(env[name], external) if name in env and external else None
        if local is None:
            env.pop(name, None)
        else:
            env[name] = local
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.update(
        HOST="127.0.0.1",
        PORT=str(port),
        ADMIN_PORT=str(admin_port),
        DATA_DIR=str(data_dir),
        SEED=str(seed),
        PYTHONUNBUFFERED="1",
    )
    if http_proxy:
        env["HTTP_PROXY"] = http_proxy
        env["http_proxy"] = http_proxy
        env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


BEHAVIOR_SERVER_LABEL = "meshplay.dev/behavior-server"
"""Pod-template label: ``"true"`` runs the behaviour server even when the container has a
command of its own."""

BEHAVIOR_SERVER_ARGV = ("python", "-m", "services.behavior_server")


def uses_behavior_server(container: Container | None, pod: Pod) -> bool:
    """Whether the pod runs the behaviour server: no command of the project's services, or the
    label asks for it."""
    if pod.labels.get(BEHAVIOR_SERVER_LABEL) == "true":
        return True
    return container is None or not is_python_service(container)


def unknown_service_package(container: Container) -> str | None:
    """``services.<pkg>`` named by the container when no such package exists, else None."""
    if not is_python_service(container):
        return None
    package = (*container.command, *container.args)[2].split(".")
    folder = ROOT.joinpath(*package)
    if (folder / "__main__.py").is_file() or folder.with_suffix(".py").is_file():
        return None
    return ".".join(package)


def declaration(behavior: AppBehavior, service: ServiceBehavior, version: str) -> dict[str, Any]:
    """The JSON the behaviour server executes: ``service``'s declaration for ``version``, each
    call resolved to its destination port and the header names it copies."""

    def call(c: Call) -> dict[str, Any]:
        dest = behavior.service(c.service)
        return {
            "method": c.method,
            "service": c.service,
            "port": dest.port if dest is not None else 8080,
            "path": c.path,
            "once": c.once,
            "timeout_s": c.timeout.seconds if c.timeout is not None else None,
            "retries": c.retries,
            "on_error": c.on_error.value,
            "error_status": c.error_status,
            "degrade_size": c.degrade_size,
            "forward": list(service.forwarded(c)),
        }

    endpoints = []
    for e in service.endpoints_of(version):
        st = e.service_time
        endpoints.append(
            {
                "route": e.route,
                "service_time": (
                    {"median_s": st.median.seconds, "p99_s": st.p99.seconds} if st else None
                ),
                "error_rate": e.error_rate,
                "status": e.response.status,
                "size": e.response.size,
                "steps": [
                    [call(c) for c in (s.parallel if isinstance(s, Parallel) else (s,))]
                    for s in e.calls
                ],
            }
        )
    return {
        "service": service.name,
        "concurrency": service.concurrency_of(version),
        "sessions": [{"cookie": s.cookie, "header": s.header} for s in service.sessions],
        "degraded_header": service.degraded_header,
        "endpoints": endpoints,
    }


def declared_behavior(
    pod: Pod, topology: Topology, behavior: AppBehavior | None
) -> ServiceBehavior | None:
    """The behaviour declared for one of the pod's Services (None: none)."""
    if behavior is None:
        return None
    for service in topology.services_of(pod):
        found = behavior.service(service.name)
        if found is not None:
            return found
    return None


def behavior_server(
    pod: Pod, behavior: AppBehavior, declared: ServiceBehavior, folder: Path
) -> tuple[list[str], dict[str, str]]:
    """The behaviour server's command line for ``pod`` and what it adds to the environment
    (its declaration for the pod's version written under ``folder``)."""
    version = pod.labels.get("version", "")
    file = write_declaration(folder / f"{pod.name}.json", behavior, declared, version)
    env = {
        "SERVICE_NAME": declared.name,
        "VERSION": version or "v1",
        "POD_NAME": pod.name,
        "BEHAVIOR_FILE": str(file),
    }
    return [sys.executable, *BEHAVIOR_SERVER_ARGV[1:]], env


def write_declaration(
    path: Path, behavior: AppBehavior, service: ServiceBehavior, version: str
) -> Path:
    """Write :func:`declaration` to ``path`` (for ``BEHAVIOR_FILE``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(declaration(behavior, service, version), indent=1), "utf-8")
    return path


def unrunnable(resources: Sequence[Resource], behavior: AppBehavior) -> list[Diagnostic]:
    """Pods the local runner cannot run, each reported at its container (MPY4005): a container
    naming a ``services.<pkg>`` that does not exist, or a meshed pod with no code of the
    project's whose Services the behaviour declaration does not describe. Pods outside the mesh
    without code (PostgreSQL, Redis) are not started and not reported."""
    topology = build_topology(resources)
    out: list[Diagnostic] = []
    for d in resources:
        if not isinstance(d, Deployment) or not d.spec.template.spec.containers:
            continue
        container = d.spec.template.spec.containers[0]
        pod = next((p for p in topology.pods if p.workload == d.name), None)
        if pod is None:
            continue
        where: tuple[str | int, ...] = ("spec", "template", "spec", "containers", 0)
        package = unknown_service_package(container)
        services = [s.name for s in topology.services_of(pod)]
        if package is not None:
            message = f"the container runs {package}, which is not one of the project's services"
            hint = f"services: {', '.join(_service_packages())}; or remove the command to run "
            hint += "the behaviour server"
            where = (*where, "command")
        elif (
            uses_behavior_server(container, pod)
            and pod.proxy is ProxyKind.SIDECAR
            and services
            and declared_behavior(pod, topology, behavior) is None
        ):
            message = (
                "the container runs no code meshplay has and behavior.yaml declares no "
                f'behaviour for its Service "{services[0]}"'
            )
            hint = f'declare service "{services[0]}" in behavior.yaml, or run one of the '
            hint += "project's services (python -m services.<pkg>)"
        else:
            continue
        pos = d.source.position(where)
        out.append(
            Diagnostic(
                "MPY4005",
                message,
                file=pos.file,
                line=pos.line,
                column=pos.column,
                resource=f"Deployment {d.namespace}/{d.name}",
                hint=hint,
            )
        )
    return out


def _service_packages() -> list[str]:
    return sorted(
        p.name
        for p in (ROOT / "services").iterdir()
        if (p / "__main__.py").is_file() and p.name != "behavior_server"
    )
