"""Lesson model values: what a lesson's request templates turn into when a runner sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError, render
from mesh.lesson import RequestSpec, load_lesson
from mesh.model import FrozenMap
from tests.fakes import lesson_folder


def test_request_id_placeholder_becomes_each_requests_own_id() -> None:
    spec = RequestSpec(
        method="POST",
        path="/orders",
        headers=FrozenMap({"idempotency-key": "${request_id}", "x-tag": "k-${request_id}-z"}),
    )
    assert spec.headers_for("r1") == {"idempotency-key": "r1", "x-tag": "k-r1-z"}
    assert spec.headers_for("r2")["idempotency-key"] == "r2"


def test_other_header_values_and_other_placeholders_are_left_alone() -> None:
    spec = RequestSpec(
        headers=FrozenMap({"authorization": "Bearer ${jwt:a@b.c}", "end-user": "jason"})
    )
    assert spec.headers_for("r1") == {"authorization": "Bearer ${jwt:a@b.c}", "end-user": "jason"}


def test_a_proxy_config_expectation_names_a_workload_and_a_known_measure(tmp_path: Path) -> None:
    """Both mistakes at once, positioned: an unknown workload (MPY4003, with a suggestion) and
    an unknown measure (MPY4004)."""
    folder = lesson_folder(
        tmp_path,
        "cfg",
        "title: T\nsteps:\n  - name: s\n    expect:\n"
        "      - proxy_config: {workload: api-gateway-v9, measure: clusters}\n        at_most: 8\n"
        "      - proxy_config: {workload: api-gateway-v1, measure: filters}\n        at_most: 8\n",
    )
    with pytest.raises(DiagnosticError) as info:
        load_lesson(folder)
    text = render(info.value.diagnostics)
    assert 'error[MPY4003] Lesson cfg: workload "api-gateway-v9" is not a Deployment' in text
    assert 'error[MPY4004] Lesson cfg: measure "filters" is not one of clusters' in text


def test_a_baseline_selects_records_and_only_beside_a_record_metric(tmp_path: Path) -> None:
    """``baseline`` is checked like the metric's own selector (a workload the app lacks is
    MPY4003, an unlogged header MPY4001, both at the baseline's key); beside a PromQL
    expectation, which has no records to subtract, it is refused (MPY4001)."""
    folder = lesson_folder(
        tmp_path,
        "base",
        "title: T\nsteps:\n  - name: s\n    expect:\n"
        "      - latency_p50_ms: {edge: api-gateway->product, workload: product-v1}\n"
        "        baseline: {edge: api-gateway->product, workload: product-v9, header: {x-a: b}}\n"
        "        at_most: 1\n"
        "      - promql: sum(up)\n        baseline: {edge: api-gateway->product}\n"
        "        at_most: 1\n",
    )
    with pytest.raises(DiagnosticError) as info:
        load_lesson(folder)
    text = render(info.value.diagnostics)
    assert 'error[MPY4003] Lesson base: workload "product-v9" is not a Deployment' in text
    assert 'header "x-a" is not in the access log' in text
    assert "baseline subtracts a record metric's value; promql is not one" in text
    assert text.count("baseline") >= 3  # each positioned at the baseline key


def test_proxy_config_may_name_the_ingress_gateway_and_count_proxies(tmp_path: Path) -> None:
    """The gateway ``istioctl install`` adds is not a Deployment of the app, yet a proxy a
    lesson may measure; ``proxies`` is a known measure."""
    folder = lesson_folder(
        tmp_path,
        "gw",
        "title: T\nsteps:\n  - name: s\n    expect:\n"
        "      - proxy_config: {workload: istio-ingressgateway, measure: listeners}\n"
        "        equals: 0\n"
        "      - proxy_config: {workload: postgres, measure: proxies}\n        equals: 0\n",
    )
    lesson = load_lesson(folder)
    assert [e.proxy_config.workload for e in lesson.steps[0].expect if e.proxy_config] == [
        "istio-ingressgateway",
        "postgres",
    ]


EGRESS_GATEWAY = (
    Path(__file__).resolve().parents[2]
    / "lessons/23-egress-gateway-tls-origination/istio/egress-gateway-install.yaml"
)


def test_install_files_join_the_apps_starting_state_as_a_gateway(tmp_path: Path) -> None:
    """``install:`` resources are part of the app from the start (every runner starts from the
    app's resources), and a Deployment injected with the ``gateway`` template is a router."""
    from mesh.topology import ProxyKind, build_topology

    folder = lesson_folder(
        tmp_path, "inst", "title: T\ninstall: [istio/egress.yaml]\nsteps:\n  - name: s\n"
    )
    (folder / "istio" / "egress.yaml").write_text(EGRESS_GATEWAY.read_text())
    lesson = load_lesson(folder)
    names = {(type(r).__name__, r.namespace, r.name) for r in lesson.app.resources}
    assert ("Deployment", "istio-system", "istio-egressgateway") in names
    assert ("Service", "istio-system", "istio-egressgateway") in names
    pods = {p.name: p for p in build_topology(lesson.app.resources).pods}
    assert pods["istio-egressgateway-0"].proxy is ProxyKind.ROUTER
    assert pods["order-v1-0"].proxy is ProxyKind.SIDECAR


def test_a_missing_install_file_is_named_at_its_key(tmp_path: Path) -> None:
    folder = lesson_folder(tmp_path, "inst2", "title: T\ninstall: [istio/nope.yaml]\nsteps: []\n")
    with pytest.raises(DiagnosticError) as info:
        load_lesson(folder)
    text = render(info.value.diagnostics)
    assert 'error[MPY4002] Lesson inst2: file "istio/nope.yaml" not found' in text
    assert "lesson.yaml:2:11: error" in text  # the item of install:
