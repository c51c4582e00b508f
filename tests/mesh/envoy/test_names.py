"""Cluster names round-trip through their parser; fixed names are recognised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    ClusterName,
    Direction,
    cluster_name,
    gateway_blackhole_vhost_name,
    gateway_route_name,
    is_special_cluster,
    parse_cluster_name,
    route_config_name,
    sni_name,
    stat_prefix,
)
from mesh.envoy_api.type_urls import KNOWN_TYPE_URLS, ROUTER, SECURITY_TYPE_URLS, typed

_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", max_size=40)


@given(
    direction=st.sampled_from(list(Direction)),
    port=st.integers(min_value=0, max_value=65535),
    subset=_label,
    host=_label,
)
def test_parse_cluster_name_inverts_cluster_name(
    direction: Direction, port: int, subset: str, host: str
) -> None:
    name = cluster_name(direction, port, subset, host)
    assert parse_cluster_name(name) == ClusterName(direction, port, subset, host)
    assert str(parse_cluster_name(name)) == name


def test_names_are_spelled_as_istiod_spells_them() -> None:
    assert (
        cluster_name("outbound", 9080, "v1", "reviews.default.svc.cluster.local")
        == "outbound|9080|v1|reviews.default.svc.cluster.local"
    )
    assert cluster_name(Direction.INBOUND, 9080) == "inbound|9080||"
    assert sni_name(9080, "v1", "reviews.default.svc.cluster.local") == (
        "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
    )


@pytest.mark.parametrize(
    "name", [BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER, "outbound|x||h", "sideways|1||h", "a|b"]
)
def test_names_istiod_builds_differently_do_not_parse(name: str) -> None:
    assert parse_cluster_name(name) is None


def test_special_clusters_are_recognised() -> None:
    assert is_special_cluster(BLACKHOLE_CLUSTER)
    assert not is_special_cluster("outbound|80||a")


def test_a_pipe_inside_a_part_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        cluster_name("outbound", 80, "v|1", "h")


def test_route_and_stat_names_are_spelled_as_istiod_spells_them() -> None:
    assert route_config_name(9080) == "9080"
    assert gateway_route_name(8080) == "http.8080"
    assert gateway_blackhole_vhost_name(80) == "blackhole:80"
    assert stat_prefix(Direction.OUTBOUND, "0.0.0.0_9080") == "outbound_0.0.0.0_9080"
    assert stat_prefix(Direction.INBOUND, "0.0.0.0_9080") == "inbound_0.0.0.0_9080"


def test_typed_accepts_known_type_urls_only() -> None:
    """Both halves (traffic and security) share one closed set of ``@type`` values."""
    assert SECURITY_TYPE_URLS <= KNOWN_TYPE_URLS
    assert typed(ROUTER) == {"@type": ROUTER}
    with pytest.raises(ValueError, match="unknown type URL"):
        typed(ROUTER + "s")
