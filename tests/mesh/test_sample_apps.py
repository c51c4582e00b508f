"""Istio's sample apps as built-in apps: the names, ports, labels and service accounts Istio's
task YAML relies on, and the call graph the samples are documented to have."""

from __future__ import annotations

from pathlib import Path

from mesh.app import App, load_app
from mesh.model.kubernetes import Deployment, Service, ServiceAccount

APPS = Path(__file__).resolve().parents[2] / "lessons" / "apps"


def _services(app: App) -> dict[str, Service]:
    return {r.name: r for r in app.resources if isinstance(r, Service)}


def _deployments(app: App) -> dict[str, Deployment]:
    return {r.name: r for r in app.resources if isinstance(r, Deployment)}


def _calls(app: App, service: str, version: str, method: str, path: str) -> list[str]:
    behavior = app.behavior.service(service)
    assert behavior is not None
    endpoint = behavior.endpoint(method, path, version)
    assert endpoint is not None, f"{service} {version} has no {method} {path}"
    out: list[str] = []
    for step in endpoint.calls:
        calls = getattr(step, "parallel", None) or (step,)
        out += [f"{c.method} {c.service}" for c in calls]
    return out


def test_bookinfo_has_the_samples_services_ports_labels_and_accounts() -> None:
    """What `kubectl apply -f samples/bookinfo/platform/kube/bookinfo.yaml` creates, so the
    task YAML (hosts productpage/reviews/ratings/details, subsets by `version`) applies."""
    app = load_app(APPS / "bookinfo")
    services = _services(app)
    assert set(services) == {"productpage", "details", "reviews", "ratings"}
    for name, svc in services.items():
        assert [(p.name, p.port) for p in svc.spec.ports] == [("http", 9080)], name
        assert dict(svc.spec.selector) == {"app": name}
        assert svc.metadata.namespace == "default"
    deployments = _deployments(app)
    assert set(deployments) == {
        "productpage-v1", "details-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3",
    }  # fmt: skip
    for name, dep in deployments.items():
        service, version = name.rsplit("-", 1)
        labels = dict(dep.spec.template.metadata.labels)
        assert labels == {"app": service, "version": version}
        assert dep.spec.template.spec.service_account_name == f"bookinfo-{service}"
    accounts = {r.name for r in app.resources if isinstance(r, ServiceAccount)}
    assert accounts == {f"bookinfo-{s}" for s in services}


def test_bookinfo_calls_as_the_sample_is_documented() -> None:
    """productpage calls details then reviews; reviews v1 never calls ratings, v2 and v3 do."""
    app = load_app(APPS / "bookinfo")
    assert _calls(app, "productpage", "v1", "GET", "/productpage") == [
        "GET details",
        "GET reviews",
    ]
    assert _calls(app, "reviews", "v1", "GET", "/reviews/0") == []
    assert _calls(app, "reviews", "v2", "GET", "/reviews/0") == ["GET ratings"]
    assert _calls(app, "reviews", "v3", "GET", "/reviews/0") == ["GET ratings"]
    assert _calls(app, "details", "v1", "GET", "/details/0") == []
    assert _calls(app, "ratings", "v1", "GET", "/ratings/0") == []


def test_httpbin_listens_on_8000_for_pods_on_80_with_its_clients() -> None:
    """httpbin's Service maps 8000 to the pods' 80 (Istio's sample); v1 and v2 as the mirroring
    task deploys them; sleep, curl and fortio-deploy (app: fortio) are the task's clients."""
    app = load_app(APPS / "httpbin")
    services = _services(app)
    (port,) = services["httpbin"].spec.ports
    assert (port.name, port.port, port.target_port) == ("http", 8000, 80)
    deployments = _deployments(app)
    assert set(deployments) == {"httpbin-v1", "httpbin-v2", "sleep", "curl", "fortio-deploy"}
    assert dict(deployments["httpbin-v2"].spec.template.metadata.labels) == {
        "app": "httpbin",
        "version": "v2",
    }
    assert deployments["fortio-deploy"].spec.template.metadata.labels["app"] == "fortio"
    assert _calls(app, "httpbin", "v1", "GET", "/get") == []
