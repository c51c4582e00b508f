"""The simulator's fast RequestRecord maker (:mod:`sim.records`) builds the very record the
dataclass constructor builds, and falls back to that constructor when the fields change."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mesh.records import ConnectionSecurityPolicy, Reporter, RequestRecord
from sim.records import FIELDS, make_record, record_maker

VALUES: dict[str, Any] = {
    "start_time": 12.5,
    "duration_ms": 3.25,
    "reporter": Reporter.DESTINATION,
    "source_workload": "productpage-v1",
    "source_namespace": "default",
    "source_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
    "destination_service": "reviews.default.svc.cluster.local",
    "destination_workload": "reviews-v2",
    "destination_namespace": "default",
    "destination_version": "v2",
    "source_app": "productpage",
    "source_version": "v1",
    "destination_app": "reviews",
    "destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
    "route_name": "reviews-route",
    "upstream_cluster": "inbound|9080||",
    "upstream_host": "10.0.0.7:9080",
    "method": "POST",
    "path": "/reviews/1",
    "authority": "reviews:9080",
    "response_code": 503,
    "response_flags": ("UO", "URX"),
    "attempts": 3,
    "bytes_received": 17,
    "bytes_sent": 42,
    "request_id": "req-1",
    "trace_id": "trace-1",
    "connection_security_policy": ConnectionSecurityPolicy.MUTUAL_TLS,
    "response_code_details": "upstream_reset_before_response_started",
    "request_protocol": "grpc",
    "request_headers": (("end-user", "jason"),),
    "source_cluster": "cluster1",
    "destination_cluster": "cluster2",
}
CLUSTERS = {"source_cluster": "", "destination_cluster": ""}


def test_fields_are_the_records_fields_in_declaration_order() -> None:
    """The positional order every caller of make_record relies on."""
    assert tuple(f.name for f in dataclasses.fields(RequestRecord)) == FIELDS
    assert set(VALUES) == set(FIELDS)


def test_the_fast_maker_is_in_use_for_request_records() -> None:
    """The unrolled maker, not the keyword fallback, serves the hot path today."""
    assert make_record.__name__ == "make"
    assert make_record.__code__.co_argcount == len(FIELDS)


@pytest.mark.parametrize("name", FIELDS)
def test_every_field_holds_what_the_constructor_would_hold(name: str) -> None:
    fast = make_record(*(VALUES[f] for f in FIELDS))
    plain = RequestRecord(**VALUES)
    assert getattr(fast, name) == getattr(plain, name) == VALUES[name]


def test_the_record_is_equal_hashable_and_frozen_like_a_constructed_one() -> None:
    fast = make_record(*(VALUES[f] for f in FIELDS))
    plain = RequestRecord(**VALUES)
    assert fast == plain
    assert hash(fast) == hash(plain)
    assert type(fast) is RequestRecord
    assert fast.to_json() == plain.to_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.response_code = 200  # type: ignore[misc]


def test_the_protocol_may_be_left_out_and_is_http() -> None:
    values = [VALUES[f] for f in FIELDS[:-4]]
    record = make_record(*values)
    assert (record.request_protocol, record.request_headers) == ("http", ())
    assert record == RequestRecord(
        **{**VALUES, "request_protocol": "http", "request_headers": (), **CLUSTERS}
    )


def test_the_logged_headers_may_be_left_out_and_are_none() -> None:
    record = make_record(*(VALUES[f] for f in FIELDS[:-3]))
    assert record == RequestRecord(**{**VALUES, "request_headers": (), **CLUSTERS})


def test_the_clusters_may_be_left_out_and_are_empty() -> None:
    """A single-cluster mesh (and the sim) does not tell a record's clusters."""
    record = make_record(*(VALUES[f] for f in FIELDS[:-2]))
    assert record == RequestRecord(**{**VALUES, **CLUSTERS})


def test_a_missing_value_is_an_error_not_a_half_filled_record() -> None:
    with pytest.raises(TypeError):
        make_record(*(VALUES[f] for f in FIELDS[:-5]))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Slim:
    a: int
    b: str = ""
    request_protocol: str = "http"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SlimPlusOne:
    a: int
    b: str = ""
    request_protocol: str = "http"
    added: int = 7


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SlimReordered:
    b: str
    a: int
    request_protocol: str = "http"


@dataclasses.dataclass(frozen=True, kw_only=True)
class SlimNoSlots:
    a: int
    b: str = ""
    request_protocol: str = "http"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SlimChecked:
    a: int
    b: str = ""
    request_protocol: str = "http"

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a must not be negative")


SLIM = ("a", "b", "request_protocol")


def test_matching_fields_get_the_fast_maker() -> None:
    make = record_maker(Slim, SLIM)
    assert make.__name__ == "make"
    assert make(1, "x") == Slim(a=1, b="x")


@pytest.mark.parametrize("cls", [SlimPlusOne, SlimReordered, SlimNoSlots, SlimChecked])
def test_changed_fields_fall_back_to_the_constructor(cls: type[Any]) -> None:
    """A new field, a new order, no slots or a __post_init__: the keyword constructor, which
    still builds the right record (values go by name, defaults and checks apply)."""
    make = record_maker(cls, SLIM)
    assert make.__name__ != "make"
    record = make(1, "x")
    assert record == cls(a=1, b="x")
    assert (record.a, record.b, record.request_protocol) == (1, "x", "http")


def test_the_fallback_keeps_post_init_checks() -> None:
    with pytest.raises(ValueError, match="negative"):
        record_maker(SlimChecked, SLIM)(-1, "x")


def test_a_renamed_field_fails_loudly() -> None:
    make = record_maker(Slim, ("a", "renamed", "request_protocol"))
    with pytest.raises(TypeError):
        make(1, "x")
