"""Local rate limiting from Istio's documented EnvoyFilter on a real Envoy: the bucket enforces
its rate exactly as the token-bucket model predicts (burst, continuous refill), 429 with body
``local_rate_limited`` and the configured header; without ``filter_enforced`` nothing is
limited."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mesh.model import MutualTLSMode
from mesh.security import LocalRateLimiter, local_ratelimit_filters
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import hcm, inbound_bootstrap, running_envoy, send

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product, version: v1}}
    spec:
      containers: [{name: app, image: product, ports: [{containerPort: 8080}]}]
---
"""

TYPED_STRUCT = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: product-ratelimit, namespace: shop}
spec:
  workloadSelector: {labels: {app: product}}
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_INBOUND
      listener:
        filterChain:
          filter:
            name: envoy.filters.network.http_connection_manager
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/udpa.type.v1.TypedStruct
          type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          value:
            stat_prefix: http_local_rate_limiter
            token_bucket: {max_tokens: 4, tokens_per_fill: 4, fill_interval: 1s}
            filter_enabled:
              runtime_key: local_rate_limit_enabled
              default_value: {numerator: 100, denominator: HUNDRED}
            filter_enforced:
              runtime_key: local_rate_limit_enforced
              default_value: {numerator: 100, denominator: HUNDRED}
            response_headers_to_add:
            - append: false
              header: {key: x-local-rate-limit, value: "true"}
"""

NOT_ENFORCED = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: product-ratelimit, namespace: shop}
spec:
  workloadSelector: {labels: {app: product}}
  configPatches:
  - applyTo: HTTP_FILTER
    match: {context: SIDECAR_INBOUND}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
          statPrefix: not_enforced
          tokenBucket: {maxTokens: 1, tokensPerFill: 1, fillInterval: 60s}
          filterEnabled: {defaultValue: {numerator: 100, denominator: HUNDRED}, runtimeKey: e}
"""


def _filters(text: str) -> list[dict[str, object]]:
    loaded = load_text(APP + text, "rl.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    topology = build_topology(loaded.resources, include_istio_system=False)
    pod = topology.pod("product-v1-0")
    assert pod is not None
    return local_ratelimit_filters(pod, loaded.resources, port=8080)


@pytest.mark.envoy
def test_bucket_on_real_envoy_enforces_the_modelled_rate(tmp_path: Path) -> None:
    limited, unenforced = _filters(TYPED_STRUCT), _filters(NOT_ENFORCED)
    assert len(limited) == len(unenforced) == 1
    port, other, admin = free_port(), free_port(), free_port()
    second = {
        "name": "second",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": other}},
        "enable_reuse_port": False,
        "filter_chains": [{"filters": [hcm(unenforced, "second")]}],
    }
    config = inbound_bootstrap(
        port=port, admin_port=admin, mode=MutualTLSMode.DISABLE, http_filters=limited,
        extra_listeners=[second],
    )  # fmt: skip
    model = LocalRateLimiter(limited[0]["typed_config"])  # type: ignore[arg-type]
    envoy_codes: list[int] = []
    model_codes: list[int] = []
    bodies: set[str] = set()
    with running_envoy(config, tmp_path, admin):
        start = time.monotonic()
        for pause in (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.625, 0.0, 0.0, 0.0, 0.0):
            time.sleep(pause)
            sent_at = time.monotonic() - start
            reply = send(port)
            envoy_codes.append(reply.status)
            model_codes.append(model.check(sent_at).status)
            if reply.status == 429:
                bodies.add(reply.body)
                assert reply.headers.get("x-local-rate-limit") == "true"
        free = [send(other).status for _ in range(5)]
    assert envoy_codes == model_codes
    assert envoy_codes[:6] == [200, 200, 200, 200, 429, 429]  # a burst drains the 4 tokens
    assert envoy_codes[6:] == [200, 200, 429, 429, 429]  # 0.625 s later: 2.5 tokens are back
    assert bodies == {"local_rate_limited"}
    assert free == [200] * 5, "filter_enforced defaults to 0 %: nothing is limited"
