"""kubectl-like apply/delete state, durations, and RequestRecord JSON round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.model import Duration
from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord, parse_response_flags
from mesh.source import load_text
from mesh.state import MeshState

VS = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{hosts: [{host}]}}\n"


def test_apply_replaces_same_name_in_place_and_delete_removes() -> None:
    a = load_text(VS.format(name="a", host="x")).resources
    b = load_text(VS.format(name="b", host="y")).resources
    a2 = load_text(VS.format(name="a", host="z")).resources
    state = MeshState().apply(a).apply(b).apply(a2)
    assert [(r.name, r.hosts) for r in state.resources] == [("a", ("z",)), ("b", ("y",))]  # type: ignore[attr-defined]
    assert [r.name for r in state.delete(a).resources] == ["b"]
    assert [r.name for r in state.delete_refs(["VirtualService/b"]).resources] == ["a"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h2m", 3720.0), ("100us", 1e-4)],
)
def test_duration_parses_istio_syntax(text: str, seconds: float) -> None:
    assert Duration.parse(text).seconds == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "s", "1 s", "-1s", "1sec", "1.s"])
def test_duration_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        Duration.parse(text)


@given(
    st.floats(min_value=0, max_value=1e4),
    st.lists(st.sampled_from(["UO", "URX", "UT", "NR"]), max_size=3),
)
def test_record_json_round_trip(duration: float, flags: list[str]) -> None:
    record = RequestRecord(
        start_time=1.0, duration_ms=duration, reporter=Reporter.DESTINATION,
        source_workload="frontend-v1", source_namespace="shop", source_principal="spiffe://x",
        destination_service="product.shop.svc.cluster.local", destination_workload="product-v1",
        destination_namespace="shop", destination_version="v1", response_flags=tuple(flags),
        connection_security_policy=ConnectionSecurityPolicy.MUTUAL_TLS,
    )  # fmt: skip
    assert RequestRecord.from_json(record.to_json()) == record
    assert parse_response_flags(record.flags_text) == tuple(flags)
