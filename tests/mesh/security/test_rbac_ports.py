"""AuthorizationPolicy ports on every runner: Envoy's ``destination_port`` is the port the
connection arrived on. On a Kubernetes sidecar that is the container port the client dialled
(``original_dst`` restores it after the iptables redirect), so istiod writes the policy's port as
given; on the local runner every target port is served on an allocated port, so the translation
writes that port instead. Without it, a DENY rule limited to ``ports: ["8080"]`` denies on sim
and on a cluster but never on real Envoy locally (lesson 12's first cut did exactly that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesh.envoy import PodPorts, PortMap, TranslateOptions, translate
from mesh.model import AuthorizationPolicy, FrozenMap, MutualTLSMode
from mesh.security import build_http_rbac, build_network_rbac
from mesh.source import load_text
from mesh.topology import build_topology
from tests.mesh.envoy.real_envoy import free_port
from tests.mesh.security.harness import inbound_bootstrap, running_envoy, send

APP = """
apiVersion: v1
kind: Service
metadata: {name: product, namespace: shop}
spec:
  selector: {app: product}
  ports: [{name: http, port: 80, targetPort: 8080}, {name: tcp-admin, port: 9000}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: product-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: product}}
  template:
    metadata: {labels: {app: product}}
    spec:
      serviceAccountName: product
      containers: [{name: app, image: product, ports: [{containerPort: 8080}]}]
"""


def _policy(rule: str, action: str = "DENY") -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: p, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: product}}}}
  action: {action}
  rules:
  - {rule}
"""


def _loaded(text: str) -> list[Any]:
    loaded = load_text(text, "p.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    return list(loaded.resources)


def _policies(rule: str) -> list[AuthorizationPolicy]:
    return [r for r in _loaded(_policy(rule)) if isinstance(r, AuthorizationPolicy)]


def _ports(filters: tuple[dict[str, Any], ...]) -> list[int]:
    """Every destination_port in the filters' permissions, in order."""
    found: list[int] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "destination_port":
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for f in filters:
        walk(f["typed_config"]["rules"])
    return found


ALLOCATED = {8080: 41234, 9000: 41235}


@pytest.mark.parametrize(
    ("rule", "as_written", "local"),
    [
        ('to: [{operation: {ports: ["8080"], paths: ["*/release"]}}]', [8080], [41234]),
        ('to: [{operation: {notPorts: ["9000"]}}]', [9000], [41235]),
        ('to: [{operation: {ports: ["8080", "9000"]}}]', [8080, 9000], [41234, 41235]),
        ('when: [{key: destination.port, values: ["8080"], notValues: ["9000"]}]',
         [8080, 9000], [41234, 41235]),
        # a port nothing is served on locally matches no connection there
        ('to: [{operation: {ports: ["7070"]}}]', [7070], [0]),
        # istiod's convertToPort accepts 0..65535 written as plain digits
        ('to: [{operation: {ports: ["0", "65535"]}}]', [0, 65535], [0, 0]),
    ],
)  # fmt: skip
def test_policy_ports_are_written_as_the_port_envoy_accepts_on(
    rule: str, as_written: list[int], local: list[int]
) -> None:
    """Without a port mapping (Kubernetes, sim) the ports stay as the policy gives them; with
    the local runner's mapping each becomes the port that target port is served on."""
    policies = _policies(rule)
    assert _ports(build_http_rbac(policies).filters) == as_written
    assert _ports(build_http_rbac(policies, ALLOCATED).filters) == local
    assert _ports(build_network_rbac(policies, destination_ports=ALLOCATED).filters) == local


@pytest.mark.parametrize("port", ["70000", "-1", "+80", "http", " 80"])
def test_a_port_istiod_cannot_parse_skips_the_rule(port: str) -> None:
    """istiod's convertToPort (ParseUint, at most 65535) fails: the rule is left out."""
    built = build_http_rbac(_policies(f'to: [{{operation: {{ports: ["{port}"]}}}}]'))
    assert built.problems and "invalid port" in built.problems[0]
    assert not built.filters[0]["typed_config"]["rules"]["policies"]


def _chain_filters(listener: dict[str, Any], name: str) -> list[dict[str, Any]]:
    chain = next(c for c in listener["filter_chains"] if c["name"] == name)
    filters: list[dict[str, Any]] = chain["filters"]
    return filters


def test_the_local_translation_writes_allocated_ports_and_istio_the_target_port() -> None:
    """The translator passes the PortMap's inbound ports to RBAC, HTTP and TCP chains alike;
    without a PortMap (what istiod sends a pod) the target port stays."""
    resources = _loaded(APP + "---" + _policy('to: [{operation: {ports: ["8080", "9000"]}}]'))
    topology = build_topology(resources, include_istio_system=False)
    port_map = PortMap.of(
        {
            "product-v1-0": PodPorts(
                inbound=FrozenMap(ALLOCATED), app=FrozenMap({8080: 41300, 9000: 41301})
            )
        }
    )
    for options, expected in (
        (TranslateOptions(), [8080, 9000]),
        (TranslateOptions(port_map=port_map), [41234, 41235]),
    ):
        inbound = translate(resources, topology, options)["product-v1-0"].listener("virtualInbound")
        assert inbound is not None
        hcm = _chain_filters(inbound, "0.0.0.0_8080")[0]
        rbac = [f for f in hcm["typed_config"]["http_filters"] if "rbac" in f["name"]]
        assert _ports(tuple(rbac)) == expected
        tcp = [f for f in _chain_filters(inbound, "0.0.0.0_9000") if "rbac" in f["name"]]
        assert _ports(tuple(tcp)) == expected


@pytest.mark.envoy
def test_real_envoy_compares_the_port_the_connection_arrived_on(tmp_path: Path) -> None:
    """A DENY rule for ``ports: ["8080"]`` + ``*/release`` on a sidecar that accepts target port
    8080 on an allocated port: real Envoy denies only when the rule names the allocated port,
    so the mapped translation agrees with the sim (which evaluates the target port)."""
    policies = _policies('to: [{operation: {ports: ["8080"], paths: ["*/release"]}}]')
    port, admin = free_port(), free_port()
    verdicts: dict[str, tuple[int, int]] = {}
    for label, mapping in (("as written", None), ("mapped", {8080: port})):
        rbac = build_http_rbac(policies, mapping)
        config = inbound_bootstrap(
            port=port, admin_port=admin, mode=MutualTLSMode.DISABLE, http_filters=rbac.filters
        )
        with running_envoy(config, tmp_path, admin):
            verdicts[label] = (
                send(port, "POST", "/products/grinder/release").status,
                send(port, "POST", "/products/grinder/reserve").status,
            )
    assert verdicts["mapped"] == (403, 200)
    assert verdicts["as written"] == (200, 200)  # Envoy never sees 8080 here: nothing denied
