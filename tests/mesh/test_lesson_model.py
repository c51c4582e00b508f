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
