"""The ``kube`` runner: real Istio in a real Kubernetes cluster.

``KubeRunner`` runs lessons (``meshplay run LESSON --runner kube``), ``KubeExecutor`` is its
executor behind :func:`mesh.engine.run_lesson`; ``meshplay cluster check|up|down`` prepares a
cluster (:mod:`cluster.kube.admin`). See ``docs/kube-runner.md``.

The names are imported on first use: :mod:`cluster.kube.loadgen` runs inside the cluster, in the
app's image, where no Kubernetes client is installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KubeExecutor", "KubeRunner", "dry_run_plan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("cluster.kube.executor"), name)
    raise AttributeError(f"module 'cluster.kube' has no attribute {name!r}")
