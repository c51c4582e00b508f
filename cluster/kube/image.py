"""The services image: built with the docker client, then put where the cluster's nodes find it.

``meshplay cluster up`` builds ``services/Dockerfile`` (the seven services, plus ``mesh`` and
``cluster`` for the load generator program) as :data:`IMAGE`. On a kind cluster (context
``kind-<name>``) the image is loaded into every node the way ``kind load docker-image`` does it:
``docker save`` streamed into ``ctr --namespace=k8s.io images import -`` inside each node
container. Elsewhere it is tagged and pushed to a registry the user names, and the app's
Deployments are applied with that image.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound

from cluster.kube.generator import LOADGEN_IMAGE
from mesh.runner import RunnerError

__all__ = ["IMAGE", "build_image", "kind_cluster_name", "load_into_kind", "push_image"]

IMAGE = LOADGEN_IMAGE
"""meshplay's services image: the seven services, and meshplay's load generator."""


def _client() -> Any:
    try:
        return docker.from_env()
    except DockerException as exc:
        raise RunnerError(f"no Docker engine: {exc} (start Docker, or set DOCKER_HOST)") from exc


def kind_cluster_name(context: str) -> str:
    """``kind-dev`` -> ``dev`` ("" when the context is not kind's)."""
    return context.removeprefix("kind-") if context.startswith("kind-") else ""


def build_image(root: Path, report: Callable[[str], None], tag: str = IMAGE) -> str:
    """Build ``services/Dockerfile`` from the repository root; the image id."""
    client = _client()
    try:
        image, _logs = client.images.build(
            path=str(root), dockerfile="services/Dockerfile", tag=tag, rm=True
        )
    except BuildError as exc:
        tail = " ".join(str(line.get("stream", "")).strip() for line in list(exc.build_log)[-5:])
        raise RunnerError(f"docker build failed: {exc.msg}: {tail}") from exc
    except (APIError, DockerException) as exc:
        raise RunnerError(f"docker build failed: {exc}") from exc
    report(f"built {tag} ({image.short_id})")
    return str(image.id)


def load_into_kind(cluster: str, report: Callable[[str], None], tag: str = IMAGE) -> int:
    """Import the image into every node container of kind cluster ``cluster``; nodes loaded."""
    client = _client()
    nodes = client.containers.list(filters={"label": f"io.x-k8s.kind.cluster={cluster}"})
    if not nodes:
        raise RunnerError(
            f'no node containers of kind cluster "{cluster}" (kind get nodes --name {cluster})'
        )
    try:
        image = client.images.get(tag)
    except ImageNotFound as exc:
        raise RunnerError(f"image {tag} is not built") from exc
    for node in nodes:
        _import(client.api, node.id, image)
        report(f"loaded {tag} into kind node {node.name}")
    return len(nodes)


def _import(api: Any, container: str, image: Any) -> None:
    """Stream ``docker save`` into ``ctr images import -`` inside one node container."""
    cmd = [
        "ctr",
        "--namespace=k8s.io",
        "images",
        "import",
        "--digests",
        "--snapshotter=overlayfs",
        "-",
    ]
    exec_id = api.exec_create(container, cmd, stdin=True, stdout=True, stderr=True)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    raw: socket.socket = getattr(sock, "_sock", sock)
    try:
        for chunk in image.save(named=True):
            raw.sendall(chunk)
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)
        while raw.recv(65536):
            pass
    finally:
        raw.close()
    code = api.exec_inspect(exec_id).get("ExitCode")
    if code not in (0, None):
        raise RunnerError(f"ctr images import failed in {container} (exit {code})")


def push_image(registry: str, report: Callable[[str], None], tag: str = IMAGE) -> str:
    """Tag the image for ``registry`` and push it; the pushed name."""
    client = _client()
    target = f"{registry.rstrip('/')}/{tag}"
    repo, _, version = target.rpartition(":")
    try:
        client.images.get(tag).tag(repo, version)
        for line in client.images.push(repo, version, stream=True, decode=True):
            if isinstance(line, dict) and line.get("error"):
                raise RunnerError(f"docker push {target}: {line['error']}")
    except (APIError, DockerException) as exc:
        raise RunnerError(f"docker push {target}: {exc}") from exc
    report(f"pushed {target}")
    return target
