"""The registry istiod would build from the manifests: hosts, protocols, pods, identities."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from mesh.app import load_app
from mesh.source import load_text
from mesh.topology import (
    SERVICE_CIDR,
    Protocol,
    ProxyKind,
    build_topology,
    port_protocol,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "app_protocol", "transport", "port", "expected"),
    [
        ("http", "", "TCP", 8080, Protocol.HTTP),
        ("http-web", "", "TCP", 8080, Protocol.HTTP),
        ("grpc-web", "", "TCP", 8080, Protocol.GRPC_WEB),
        ("tcp-db", "", "TCP", 5432, Protocol.TCP),
        ("web", "", "TCP", 8080, Protocol.UNSUPPORTED),
        ("web", "http", "TCP", 8080, Protocol.HTTP),
        ("http", "kubernetes.io/h2c", "TCP", 8080, Protocol.HTTP2),
        ("web", "kubernetes.io/ws", "TCP", 8080, Protocol.HTTP),
        ("web", "kubernetes.io/wss", "TCP", 8443, Protocol.HTTPS),
        ("", "", "TCP", 3306, Protocol.TCP),
        ("dns", "", "UDP", 53, Protocol.UDP),
        ("HTTP-Web", "", "TCP", 8080, Protocol.HTTP),
        ("GRPC-Web-x", "", "TCP", 8080, Protocol.GRPC_WEB),
        # appProtocol replaces the name and is read the same way: prefix before "-", grpc-web
        ("web", "http-v1", "TCP", 8080, Protocol.HTTP),
        ("web", "grpc-web", "TCP", 8080, Protocol.GRPC_WEB),
        ("web", "HTTPS", "TCP", 8443, Protocol.HTTPS),
        # an appProtocol Istio does not know: the port is sniffed, the name is not consulted
        ("http", "custom", "TCP", 8080, Protocol.UNSUPPORTED),
        ("http-web", "example.com/proto", "TCP", 8080, Protocol.UNSUPPORTED),
        ("tcp", "custom", "TCP", 9000, Protocol.UNSUPPORTED),
        # Kubernetes' own values are matched exactly, as istiod's switch does
        ("http", "Kubernetes.io/H2C", "TCP", 8080, Protocol.UNSUPPORTED),
        # well-known server-first ports are TCP rather than sniffed, whatever made it unknown
        ("http", "custom", "TCP", 3306, Protocol.TCP),
        ("web", "", "TCP", 27017, Protocol.TCP),
        ("http", "custom", "UDP", 8080, Protocol.UDP),
    ],
)
def test_port_protocol_follows_istio_rules(
    name: str, app_protocol: str, transport: str, port: int, expected: Protocol
) -> None:
    """istiod's ConvertProtocol: a set appProtocol replaces the name (an unknown one is sniffed,
    never a fallback to the name); unknown is TCP on 25/53/3306/27017, else sniffed."""
    assert port_protocol(name, app_protocol, transport, port) is expected


def test_ecommerce_app_topology() -> None:
    """Seven services in namespace shop, product in two versions, identities per service account."""
    app = load_app(ROOT / "lessons" / "apps" / "ecommerce")
    topo = build_topology(app.resources)
    product = topo.service("product.shop.svc.cluster.local")
    assert product is not None
    assert [p.protocol for p in product.ports] == [Protocol.HTTP]
    versions = sorted(p.labels["version"] for p in topo.endpoints(product))
    assert versions == ["v1", "v2"]
    v2 = topo.endpoints(product, {"version": "v2"})
    assert len(v2) == 1
    assert v2[0].identity == "spiffe://cluster.local/ns/shop/sa/product"
    assert v2[0].proxy is ProxyKind.SIDECAR
    postgres = [p for p in topo.pods if p.workload == "postgres"]
    assert postgres and postgres[0].proxy is ProxyKind.NONE  # sidecar.istio.io/inject: "false"
    gateway = [p for p in topo.pods if p.namespace == "istio-system"]
    assert gateway and gateway[0].proxy is ProxyKind.ROUTER
    assert all(p.address.startswith("127.") for p in topo.pods)  # never routable off-box


@pytest.mark.parametrize(
    ("host", "namespace", "expected"),
    [
        ("reviews", "bookinfo", "reviews.bookinfo.svc.cluster.local"),
        ("reviews", "default", "reviews.default.svc.cluster.local"),
        ("reviews.bookinfo.svc.cluster.local", "default", "reviews.bookinfo.svc.cluster.local"),
        # istiod expands only a name without a dot: these are literal hosts, not short names
        ("reviews.bookinfo", "default", "reviews.bookinfo"),
        ("reviews.bookinfo.svc", "default", "reviews.bookinfo.svc"),
        ("httpbin.org", "default", "httpbin.org"),
        ("*.example.com", "default", "*.example.com"),
        ("*", "default", "*"),
        ("10.1.2.3", "default", "10.1.2.3"),
        ("2001:db8::1", "default", "2001:db8::1"),
    ],
)
def test_resolve_host_expands_only_short_names(host: str, namespace: str, expected: str) -> None:
    """istiod's ResolveShortnameToFQDN: a host without a dot gets ``.<ns>.svc.cluster.local``;
    every other host (``name.ns`` included, even when that namespace exists) stays as written."""
    topo = build_topology(
        load_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: bookinfo}\n"
            "spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}\n"
        ).resources
    )
    assert "bookinfo" in topo.namespaces
    assert topo.resolve_host(host, namespace) == expected


_TWO_APPS = """apiVersion: v1
kind: Service
metadata: {name: product, namespace: shop}
spec: {selector: {app: product}, ports: [{name: http, port: 8080}]}
""" + "".join(
    f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}-{version}, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: {app}, version: {version}}}}}
  template:
    metadata: {{labels: {{app: {app}, version: {version}, tier: {tier}}}}}
    spec: {{containers: [{{name: app, image: x, ports: [{{containerPort: 8080}}]}}]}}
"""
    for app, version, tier in (
        ("product", "v1", "web"), ("product", "v2", "web"), ("review", "v1", "web")
    )
)  # fmt: skip


@pytest.mark.parametrize(
    ("subset", "expected"),
    [
        (None, ["product-v1-0", "product-v2-0"]),
        ({}, ["product-v1-0", "product-v2-0"]),
        ({"version": "v1"}, ["product-v1-0"]),
        ({"version": "v3"}, []),
        ({"tier": "web"}, ["product-v1-0", "product-v2-0"]),
        # a subset restating the selector narrows nothing
        ({"app": "product", "version": "v2"}, ["product-v2-0"]),
        # a subset that names another app's labels: no endpoint (never review's pod)
        ({"app": "review"}, []),
        ({"app": "review", "version": "v1"}, []),
    ],
)
def test_subset_endpoints_only_narrow_the_service(
    subset: dict[str, str] | None, expected: list[str]
) -> None:
    """istiod: a subset's endpoints are the service's endpoints whose labels contain the
    subset's labels; a subset label can never widen the selection past the service selector."""
    topo = build_topology(load_text(_TWO_APPS, "two-apps.yaml").resources)
    product = topo.service("product.shop.svc.cluster.local")
    assert product is not None
    assert [p.name for p in topo.endpoints(product, subset)] == expected


def test_named_target_port_resolves_to_container_port() -> None:
    resources = load_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
        "spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: web}]}\n"
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n  replicas: 2\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, ports: [{name: web, containerPort: 9000}]}]}\n"
    ).resources
    topo = build_topology(resources)
    web = topo.service("web.default.svc.cluster.local")
    assert web is not None and web.ports[0].target_port == 9000
    assert [p.name for p in topo.endpoints(web)] == ["web-0", "web-1"]


def _services(*specs: str) -> str:
    return "\n---\n".join(
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: t}}
spec:
  {spec}
  ports: [{{name: tcp-db, port: 5432}}]"""
        for name, spec in (s.split(":", 1) for s in specs)
    )


def _vips(text: str) -> dict[str, tuple[str, ...]]:
    loaded = load_text(text, "svc.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    topo = build_topology(loaded.resources, include_istio_system=False)
    return {s.name: s.addresses for s in topo.services}


def test_a_written_cluster_ip_is_the_vip_and_none_is_headless() -> None:
    loaded = load_text(
        _services("db:clusterIP: 10.96.7.7", "direct:clusterIP: None", "plain:selector: {}"),
        "svc.yaml",
    )
    topo = build_topology(loaded.resources, include_istio_system=False)
    by_name = {s.name: s for s in topo.services}
    assert (by_name["db"].addresses, by_name["db"].vip, by_name["db"].headless) == (
        ("10.96.7.7",),
        "10.96.7.7",
        False,
    )
    assert (by_name["direct"].addresses, by_name["direct"].headless) == ((), True)
    assert by_name["plain"].vip != "10.96.7.7"


def test_allocated_vips_are_stable_and_do_not_move_with_unrelated_services() -> None:
    alone = _vips(_services("db:selector: {}"))
    crowded = _vips(_services(*(f"s{i}:selector: {{}}" for i in range(300)), "db:selector: {}"))
    assert alone["db"] == crowded["db"] == _vips(_services("db:selector: {}"))["db"]
    vips = [v for vs in crowded.values() for v in vs]
    assert len(set(vips)) == len(vips) == 301
    assert all(ipaddress.ip_address(v) in SERVICE_CIDR for v in vips)
    assert "10.96.0.1" not in vips  # the kubernetes API Service's address in a real cluster


def test_an_allocation_never_takes_a_written_cluster_ip() -> None:
    wanted = _vips(_services("db:selector: {}"))["db"][0]
    both = _vips(_services("db:selector: {}", f"aaa:clusterIP: {wanted}"))
    assert both["aaa"] == (wanted,)
    assert both["db"] != (wanted,)


def test_the_inject_label_wins_over_the_deprecated_annotation_and_the_namespace() -> None:
    """Istio's injector reads the pod label ``sidecar.istio.io/inject`` first, then the
    deprecated annotation of the same name, then the namespace's ``istio-injection`` label."""
    docs = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: by-label, namespace: shop}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata:
      labels: {app: a, sidecar.istio.io/inject: "false"}
      annotations: {sidecar.istio.io/inject: "true"}
    spec: {containers: [{name: a, image: a}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: by-annotation, namespace: shop}
spec:
  selector: {matchLabels: {app: b}}
  template:
    metadata:
      labels: {app: b}
      annotations: {sidecar.istio.io/inject: "false"}
    spec: {containers: [{name: b, image: b}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: by-namespace, namespace: shop}
spec:
  selector: {matchLabels: {app: c}}
  template:
    metadata: {labels: {app: c}}
    spec: {containers: [{name: c, image: c}]}
"""
    from mesh.source import load_text

    topo = build_topology(load_text(docs, "inject.yaml").resources)
    proxies = {p.workload: p.proxy for p in topo.pods if p.namespace == "shop"}
    assert proxies == {
        "by-label": ProxyKind.NONE,
        "by-annotation": ProxyKind.NONE,
        "by-namespace": ProxyKind.SIDECAR,
    }
