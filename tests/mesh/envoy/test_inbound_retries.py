"""The inbound route's retry policy: ``reset-before-request`` x2 since Istio 1.24, never on
gRPC ports (a reset gRPC stream is not safe to replay), none before 1.24."""

from __future__ import annotations

from mesh.envoy.route_config import inbound_route_config


def _policy(version: str, *, grpc: bool = False) -> object:
    config = inbound_route_config(8080, 8080, "a.b.svc.cluster.local", version, grpc=grpc)
    return config["virtual_hosts"][0]["routes"][0]["route"].get("retry_policy")


def test_http_ports_retry_resets_before_request_since_1_24() -> None:
    assert _policy("1.28") == {"num_retries": 2, "retry_on": "reset-before-request"}
    assert _policy("1.23") is None


def test_grpc_ports_get_no_inbound_retries() -> None:
    assert _policy("1.28", grpc=True) is None
