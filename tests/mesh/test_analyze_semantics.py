"""When each istioctl analyzer fires, and when it stays silent, on inputs built for the edge.

The corpus (``test_diagnostics_corpus.py``) pins how each code is rendered; these tables pin the
conditions istioctl's analyzers (``pkg/config/analysis/analyzers``) use: exportTo scopes, how
short host names are expanded, binds and ports of gateway servers, address auto-allocation,
match identity without names. Each case lists every code the input must produce (beyond the shared
app below) - an empty set is a good input that must stay clean.
"""

from __future__ import annotations

import pytest

from mesh.analyze import analyze
from mesh.source import load_text

APP = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v1}}
  template:
    metadata: {labels: {app: reviews, version: v1}}
    spec:
      containers: [{name: reviews, image: reviews}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw-%(name)s, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %(port)s, name: http-%(name)s, protocol: HTTP}
    hosts: [%(hosts)s]
    bind: "%(bind)s"
"""


def _gateway(name: str, hosts: str, port: int = 80, bind: str = "") -> str:
    return GATEWAY % {"name": name, "hosts": hosts, "port": port, "bind": bind}


def _vs(name: str, hosts: str, extra: str = "", namespace: str = "default") -> str:
    return f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{hosts}]
{extra}  http:
  - route: [{{destination: {{host: reviews.default.svc.cluster.local}}}}]
"""


def _codes(text: str) -> set[str]:
    loaded = load_text(APP + "---" + text, "case.yaml")
    assert not [d for d in loaded.diagnostics if d.severity.name == "ERROR"], loaded.diagnostics
    return {d.code for d in analyze(loaded.resources)}


CASES = [
    # --- IST0109: mesh VirtualServices sharing a host, by exportTo scope ------------------------
    ("two VS for one host", _vs("a", "reviews") + "---" + _vs("b", "reviews"), {"IST0109"}),
    ("the FQDN and the short name are one host",
     _vs("a", "reviews") + "---" + _vs("b", "reviews.default.svc.cluster.local"), {"IST0109"}),
    ("exported to different namespaces only",
     _vs("a", "reviews", "  exportTo: [.]\n") + "---" + _vs("b", "reviews", "  exportTo: [other]\n"),
     set()),
    ("a namespace-local VS meets a wildcard exported everywhere",
     _vs("a", "reviews", "  exportTo: [.]\n") + "---" + _vs("b", '"*.default.svc.cluster.local"'),
     {"IST0109"}),
    ("one bound to a gateway only is not a mesh VS",
     _gateway("a", "reviews.example.com") + "---" + _vs("a", "reviews") + "---"
     + _vs("b", "reviews", "  gateways: [gw-a]\n"), {"IST0132"}),
    # --- IST0101 host / host:port, with istioctl's host expansion --------------------------------
    ("name.namespace is not expanded", _vs("a", "ratings").replace(
        "reviews.default.svc.cluster.local", "reviews.default"), {"IST0101"}),
    ("a Service exported to its namespace only is unknown elsewhere",
     _vs("a", "ratings", namespace="shop").replace(
         "reviews.default.svc.cluster.local", "hidden.default.svc.cluster.local")
     + """---
apiVersion: v1
kind: Service
metadata:
  name: hidden
  namespace: default
  annotations: {networking.istio.io/exportTo: "."}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
""", {"IST0101"}),
    ("a wildcard ServiceEntry host covers the destination",
     _vs("a", "api.example.com").replace("reviews.default.svc.cluster.local", "api.example.com")
     + """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: example, namespace: default}
spec:
  hosts: ["*.example.com"]
  resolution: DNS
  ports: [{number: 443, name: https, protocol: HTTPS}]
""", set()),
    # --- IST0145: same selector, port, host and bind ---------------------------------------------
    ("same port and host", _gateway("a", "shop.example.com") + "---" + _gateway("b", "shop.example.com"),
     {"IST0145"}),
    ("different ports", _gateway("a", "shop.example.com") + "---" + _gateway("b", "shop.example.com", 443),
     set()),
    ("a port the gateway Service does not expose", _gateway("a", "shop.example.com", 9443), {"IST0162"}),
    ("different binds", _gateway("a", "shop.example.com", bind="0.0.0.0")
     + "---" + _gateway("b", "shop.example.com", bind="127.0.0.1"), set()),
    ("a wildcard host is another host string", _gateway("a", "shop.example.com")
     + "---" + _gateway("b", '"*.example.com"'), set()),
    # --- IST0134: addresses istiod does not allocate ------------------------------------------------
    ("TCP entry with resolution NONE", """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  resolution: NONE
  ports: [{number: 5432, name: tcp, protocol: TCP}]
""", {"IST0133", "IST0134"}),
    ("TCP entry with resolution DNS gets an allocated address", """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP}]
""", set()),
    ("opting out of allocation", """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: db
  namespace: default
  labels: {networking.istio.io/enable-autoallocate-ip: "false"}
spec:
  hosts: [db.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp, protocol: TCP}]
""", {"IST0133", "IST0134"}),
    # --- IST0130 / IST0131: match identity ignores names -------------------------------------------
    ("same match under another name", """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{name: first, headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{name: second, headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
""", {"IST0130", "IST0131"}),
    ("a longer prefix with another method is not covered", """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /api/v2}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v1}}]
""", set()),
    # --- IST0127: only workloads with a proxy count -------------------------------------------------
    ("a policy selecting pods without sidecar", """
apiVersion: v1
kind: Namespace
metadata: {name: legacy, labels: {istio-injection: disabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: old, namespace: legacy}
spec:
  selector: {matchLabels: {app: old}}
  template:
    metadata: {labels: {app: old}}
    spec:
      containers: [{name: old, image: old}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: old, namespace: legacy}
spec:
  selector: {matchLabels: {app: old}}
  rules: [{}]
""", {"IST0127"}),
    # --- IST0173 / MPY3006 -------------------------------------------------------------------------
    ("a subset with labels of another service's pods", """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: by-app, namespace: default}
spec:
  host: reviews
  subsets: [{name: other, labels: {app: other}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other, namespace: default}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: other}}
    spec:
      containers: [{name: other, image: other}]
""", {"MPY3006"}),
    ("a ServiceEntry subset is checked against its endpoints", """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: default}
spec:
  hosts: [vm.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {version: blue}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: vms, namespace: default}
spec:
  host: vm.example.com
  subsets: [{name: blue, labels: {version: blue}}, {name: green, labels: {version: green}}]
""", {"IST0173"}),
    # --- annotations: the label form of sidecar.istio.io/inject is not deprecated -----------------
    ("the inject label next to the annotation", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata:
      labels: {app: reviews, version: v2, sidecar.istio.io/inject: "true"}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      containers: [{name: reviews, image: reviews}]
""", set()),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_analyzer_fires_as_istioctl_does(text: str, expected: set[str]) -> None:
    assert _codes(text) == expected


def test_the_shared_app_is_clean() -> None:
    """The baseline of every case: a Service, its Deployment and a DestinationRule."""
    assert analyze(load_text(APP, "app.yaml").resources) == []


def test_ist0109_names_every_virtual_service_and_the_scoped_host() -> None:
    text = _vs("a", "reviews") + "---" + _vs("b", "reviews")
    found = [d for d in analyze(load_text(APP + "---" + text).resources) if d.code == "IST0109"]
    assert [d.resource for d in found] == ["VirtualService default/a", "VirtualService default/b"]
    assert all(
        d.message.startswith(
            "The VirtualServices default/a,default/b associated with mesh gateway define the "
            "same host */reviews.default.svc.cluster.local which"
        )
        for d in found
    )
