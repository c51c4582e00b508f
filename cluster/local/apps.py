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
* ``DATABASE_URL``/``REDIS_URL`` are dropped: PostgreSQL and Redis run outside the mesh
  (``sidecar.istio.io/inject: "false"``) and are not started locally, so the services use their
  SQLite default and no cache. When the caller does run them (``external``: the in-cluster
  ``host:port`` such as ``postgres:5432`` mapped to a local ``127.0.0.1:PORT``), a URL naming
  one of them is kept, pointed at the local address: every replica then shares that database
  and cache, as on a cluster.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mesh.model.kubernetes import Container, EnvVar
from mesh.topology import Pod

__all__ = ["ROOT", "app_argv", "app_env", "external_url", "is_python_service"]

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
