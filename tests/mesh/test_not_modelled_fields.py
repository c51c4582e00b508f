"""A valid Istio field that meshplay does not translate is reported (MPY2001), never dropped
silently: the learner must know the sim and local ignore it."""

from __future__ import annotations

from mesh.source import load_text

SLOW_START = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: product, namespace: shop}
spec:
  host: product
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmupDurationSecs: 60s
"""


def test_slow_start_is_reported_as_not_modelled_at_its_key() -> None:
    loaded = load_text(SLOW_START, "dr.yaml", default_namespace="shop")
    assert loaded.ok
    (warning,) = [d for d in loaded.diagnostics if d.code == "MPY2001"]
    assert (warning.line, warning.column) == (10, 7)
    assert "warmupDurationSecs" in warning.render()
