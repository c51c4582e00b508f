"""Lesson model values: what a lesson's request templates turn into when a runner sends them."""

from __future__ import annotations

from mesh.lesson import RequestSpec
from mesh.model import FrozenMap


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
