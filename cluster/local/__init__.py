"""The ``local`` runner: real Envoy sidecars and the real services as processes on 127.0.0.1.

``LocalRunner`` runs lessons; ``LocalMesh`` is the running mesh (``meshplay up`` keeps one
alive). See ``docs/local-runner.md``.
"""

from cluster.local.mesh import LocalMesh
from cluster.local.runner import LocalRunner

__all__ = ["LocalMesh", "LocalRunner"]
