"""The security half as the translator wires it: JWKS resolution, the auto-mTLS endpoint tags,
the per-port PeerAuthentication chains and static bootstraps of TLS listeners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesh.envoy import ProxyConfig, TranslateOptions, bootstrap, translate
from mesh.source import load_paths, load_text
from mesh.topology import MeshConfig, build_topology

TESTDATA = Path(__file__).parent / "testdata"
BASE = TESTDATA / "base.yaml"

JWT = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: tokens, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  jwtRules:
  - issuer: http://reviews.shop.svc.cluster.local
    jwksUri: http://reviews.shop.svc.cluster.local:9080/.well-known/jwks.json
"""


def _translate(extra: str, options: TranslateOptions | None = None) -> dict[str, ProxyConfig]:
    base = load_paths([BASE])
    more = load_text(extra, "extra.yaml") if extra else None
    resources = [*base.resources, *(more.resources if more else ())]
    assert base.ok and (more is None or more.ok)
    return dict(
        translate(resources, build_topology(resources, include_istio_system=False), options)
    )


def _http_filters(proxy: ProxyConfig, port: int) -> list[dict[str, Any]]:
    inbound = proxy.listener("virtualInbound")
    assert inbound is not None
    chain = next(c for c in inbound["filter_chains"] if c["name"] == f"0.0.0.0_{port}")
    filters: list[dict[str, Any]] = chain["filters"][0]["typed_config"]["http_filters"]
    return filters


def _provider(proxy: ProxyConfig) -> dict[str, Any]:
    jwt = next(f for f in _http_filters(proxy, 8080) if f["name"] == "envoy.filters.http.jwt_authn")
    provider: dict[str, Any] = jwt["typed_config"]["providers"]["origins-0"]
    return provider


def test_jwks_uri_is_fetched_by_envoy_without_a_resolver() -> None:
    provider = _provider(_translate(JWT)["product-v1-0"])
    assert "local_jwks" not in provider
    assert provider["remote_jwks"]["http_uri"]["cluster"] == (
        "outbound|9080||reviews.shop.svc.cluster.local"
    )


def test_jwks_resolver_inlines_the_keys_it_returns() -> None:
    seen: list[str] = []

    def resolver(uri: str) -> str | None:
        seen.append(uri)
        return '{"keys": []}'

    provider = _provider(_translate(JWT, TranslateOptions(jwks_resolver=resolver))["product-v1-0"])
    assert provider["local_jwks"] == {"inline_string": '{"keys": []}'}
    assert "remote_jwks" not in provider
    assert seen and set(seen) == {
        "http://reviews.shop.svc.cluster.local:9080/.well-known/jwks.json"
    }


def test_a_resolver_that_cannot_fetch_leaves_the_remote_jwks() -> None:
    options = TranslateOptions(jwks_resolver=lambda _uri: None)
    assert "remote_jwks" in _provider(_translate(JWT, options)["product-v1-0"])


def test_security_filters_only_on_the_selected_workload() -> None:
    config = _translate(JWT)
    names = [f["name"] for f in _http_filters(config["reviews-v1-0"], 9080)]
    assert names == ["envoy.filters.http.router"]
    names = [f["name"] for f in _http_filters(config["product-v1-0"], 8080)]
    assert names == ["envoy.filters.http.jwt_authn", "envoy.filters.http.router"]


def _tags(proxy: ProxyConfig, cluster: str) -> dict[str, bool]:
    assignment = proxy.load_assignment(cluster)
    assert assignment is not None
    return {
        ep["metadata"]["filter_metadata"]["istio"]["pod"]: "envoy.transport_socket_match"
        in ep["metadata"]["filter_metadata"]
        for group in assignment["endpoints"]
        for ep in group["lb_endpoints"]
    }


def test_only_endpoints_that_take_mtls_are_tagged_istio() -> None:
    disable_v2 = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: v2-plaintext, namespace: shop}
spec:
  selector: {matchLabels: {app: product, version: v2}}
  mtls: {mode: DISABLE}
"""
    front = _translate(disable_v2)["frontend-v1-0"]
    tags = _tags(front, "outbound|8080||product.shop.svc.cluster.local")
    assert tags == {"product-v1-0": True, "product-v1-1": True, "product-v2-0": False}
    cluster = front.cluster("outbound|8080||product.shop.svc.cluster.local")
    assert cluster is not None
    matches = cluster["transport_socket_matches"]
    assert [m["name"] for m in matches] == ["tlsMode-istio", "tlsMode-disabled"]
    tls = matches[0]["transport_socket"]["typed_config"]
    assert tls["sni"] == "outbound_.8080_._.product.shop.svc.cluster.local"
    assert tls["common_tls_context"]["tls_params"]["tls_maximum_protocol_version"] == "TLSv1_3"


def test_auto_mtls_off_in_mesh_config_means_plaintext_clusters() -> None:
    resources = load_paths([BASE]).resources
    config = MeshConfig(enable_auto_mtls=False)
    topology = build_topology(resources, config, include_istio_system=False)
    front = translate(resources, topology)["frontend-v1-0"]
    outbound = [c for c in front.clusters if c["name"].startswith("outbound|")]
    assert outbound
    for cluster in outbound:
        assert "transport_socket_matches" not in cluster, cluster["name"]
        assert "transport_socket" not in cluster, cluster["name"]


def test_static_bootstrap_names_listener_secrets_without_an_sds_source() -> None:
    proxy = _translate("")["product-v1-0"]
    doc = bootstrap(proxy, admin_port=0)
    inbound = next(x for x in doc["static_resources"]["listeners"] if x["name"] == "virtualInbound")
    tls_chain = next(c for c in inbound["filter_chains"] if "transport_socket" in c)
    context = tls_chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert context["tls_certificate_sds_secret_configs"] == [{"name": "default"}]
    assert context["combined_validation_context"]["validation_context_sds_secret_config"] == {
        "name": "ROOTCA"
    }
    # the translation itself is untouched: xDS still names the ADS source
    raw = proxy.listener("virtualInbound")
    assert raw is not None
    raw_chain = next(c for c in raw["filter_chains"] if "transport_socket" in c)
    raw_context = raw_chain["transport_socket"]["typed_config"]["common_tls_context"]
    assert "sds_config" in raw_context["tls_certificate_sds_secret_configs"][0]
