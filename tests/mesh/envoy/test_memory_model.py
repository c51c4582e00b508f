"""The simulator's proxy memory is a model of real Envoy's: re-measured here on Envoy 1.40.

``proxy_config`` ``memory_mb`` on ``sim`` is :data:`mesh.envoy.memory.HEAP_MODEL` applied to the
step's translated configuration. This test loads configurations of very different sizes and
shapes (few and many clusters, subsets, another app, a Sidecar-scoped proxy is just a small one)
into real Envoys and checks that the model stays within 10 % of ``/memory`` ``allocated``, and
that what the lesson teaches holds for the real binary: the heap grows with clusters.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.envoy.memory import HEAP_MODEL
from tests.mesh.envoy.memory_probe import config_for, measure

CASES = [
    ("benchmark", "fortioclient-0", 0, False),
    ("benchmark", "fortioclient-0", 150, False),
    ("benchmark", "fortioclient-0", 40, True),
    ("ecommerce", "api-gateway-v1-0", 60, False),
]


@pytest.mark.envoy
def test_the_heap_model_matches_real_envoy_within_ten_percent(tmp_path: Path) -> None:
    measured = [
        measure(config_for(app, pod, extra, subsets=subsets), tmp_path)
        for app, pod, extra, subsets in CASES
    ]
    for m in measured:
        modelled = HEAP_MODEL.allocated_mb(m.config)
        error = abs(modelled - m.allocated_mb) / m.allocated_mb
        assert error <= 0.10, (m.row(), round(modelled, 2))
    small, big = measured[0], measured[1]
    assert len(big.config.clusters) - len(small.config.clusters) == 150
    per_cluster_kb = (big.allocated - small.allocated) / 150 / 1024
    assert 40 <= per_cluster_kb <= 160, per_cluster_kb  # the fit says 78 KiB
    assert big.rss_kb > small.rss_kb  # the RSS follows, above Envoy's ~60 MB of code
