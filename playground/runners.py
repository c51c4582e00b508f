"""Where runners come from: the composition root maps runner names to implementations.

Imports are lazy so ``meshplay analyze`` never pays for simpy, Envoy or Kubernetes clients, and a
runner whose dependencies are missing fails with a clear message only when asked for.
"""

from __future__ import annotations

import importlib

from mesh.runner import Runner, RunnerError

__all__ = ["RUNNERS", "available_runners", "get_runner"]

RUNNERS: dict[str, str] = {
    "sim": "playground.observed:ObservedSimRunner",
    "local": "cluster.local.monitored:MonitoredLocalRunner",
    "kube": "cluster.kube:KubeRunner",
}
"""Runner name -> ``module:Class``. ``sim`` and ``local`` answer PromQL (``promql:``/``alert:``
expectations): the simulator through a TSDB of its records, built when a step asks; the local
runner through a Prometheus started next to the mesh when the lesson needs it."""


def get_runner(name: str, **options: object) -> Runner:
    """Build the runner called ``name`` (``sim``, ``local``, ``kube``); ``options`` go to its
    constructor (the kube runner's ``context`` and ``namespace``)."""
    target = RUNNERS.get(name)
    if target is None:
        raise RunnerError(f'unknown runner "{name}": choose one of {", ".join(RUNNERS)}')
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise RunnerError(f'runner "{name}" is not available in this build: {exc}') from exc
    runner = factory(**options)
    if not isinstance(runner, Runner):
        raise RunnerError(f"{target} does not implement the Runner protocol")
    return runner


def available_runners() -> list[str]:
    """Runner names whose implementation can be imported here."""
    out = []
    for name, target in RUNNERS.items():
        module_name, _, attr = target.partition(":")
        try:
            if hasattr(importlib.import_module(module_name), attr):
                out.append(name)
        except ImportError:
            continue
    return out
