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


_HOMES = {"KubeExecutor": "cluster.kube.executor", "KubeRunner": "cluster.kube.runner",
          "dry_run_plan": "cluster.kube.runner"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'cluster.kube' has no attribute {name!r}")
