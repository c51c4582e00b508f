"""Naming a proxy as istioctl does: ``pod``, ``pod.namespace`` or ``deploy/NAME``, and telling
the proxy apart from the PATHs on a ``proxy-config`` command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from playground.inputs import InputError

__all__ = ["DEPLOY_PREFIXES", "find_pod", "split_targets"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def workload(self) -> str: ...


_P = TypeVar("_P", bound=_Named)

DEPLOY_PREFIXES = ("deploy/", "deployment/", "deployments/")


def find_pod(pods: Sequence[_P], wanted: str) -> _P | None:
    """The pod ``wanted`` names, as istioctl reads it: ``pod``, ``pod.namespace``,
    ``deploy/NAME[.namespace]`` (the Deployment's first pod); a bare workload name also works."""
    deploy = wanted.startswith(DEPLOY_PREFIXES)
    name, _, namespace = wanted.split("/", 1)[1].partition(".") if deploy else wanted.partition(".")
    if not deploy:
        for pod in pods:
            if pod.name == name and namespace in ("", pod.namespace):
                return pod
    for pod in pods:
        if pod.workload == name and namespace in ("", pod.namespace):
            return pod
    return None


def split_targets(targets: Sequence[str], proxy: str | None) -> tuple[str, list[str]]:
    """(the proxy, the PATHs) of ``[POD] [PATH...]``: the POD is the one argument that is not a
    file or folder (``deploy/NAME`` or a name without ``/``); ``--proxy`` may name it instead."""
    pods: list[str] = []
    paths: list[str] = []
    for target in targets:
        if target == "-" or Path(target).exists():
            paths.append(target)
        elif "/" in target and not target.startswith(DEPLOY_PREFIXES):
            raise InputError(f"{target}: no such file or folder")
        else:
            pods.append(target)
    if proxy:
        pods.insert(0, proxy)
    if not pods:
        raise InputError(
            "which proxy? name a pod (product-v1-0), pod.namespace or deploy/NAME, "
            "e.g. meshplay proxy-config routes deploy/api-gateway-v1"
        )
    if len(pods) > 1:
        extra = pods[1]
        raise InputError(f"{extra}: no such file or folder (the proxy is {pods[0]})")
    return pods[0], paths
