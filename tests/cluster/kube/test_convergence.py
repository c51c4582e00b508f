"""When a configuration change counts as having reached the proxies (istiod's own account)."""

from __future__ import annotations

import json

from cluster.kube.convergence import config_versions, parse_syncz, pending_proxies


def _syncz(**proxies: tuple[str, str]) -> str:
    return json.dumps([
        {"proxy": name.replace("_", "-") + ".shop", "cluster_id": "Kubernetes",
         **{f"{t}_sent": sent for t in ("cluster", "listener", "route", "endpoint")},
         **{f"{t}_acked": acked for t in ("cluster", "listener", "route", "endpoint")}}
        for name, (sent, acked) in proxies.items()
    ])  # fmt: skip


def test_a_proxy_converges_when_it_acked_a_new_push() -> None:
    """Before: everything acked at nonce a. After the apply: product got b and acked it, order
    got b but acked only a (a NACK or a push in flight)."""
    before = parse_syncz(_syncz(product_v1=("a", "a"), order_v1=("a", "a")))
    now = parse_syncz(_syncz(product_v1=("b", "b"), order_v1=("b", "a")))
    pending = pending_proxies(before, now, quiet_elapsed=False)
    assert [p.proxy for p in pending] == ["order-v1.shop"]
    assert (
        pending[0].describe()
        == "CDS sent b, acked a; EDS sent b, acked a; LDS sent b, acked a; RDS sent b, acked a"
    )


def test_a_proxy_sent_nothing_new_counts_only_after_the_quiet_period() -> None:
    """istiod may push a change to some proxies only: one that got nothing new is converged
    once the quiet period after istiod held the config has passed, not before."""
    before = parse_syncz(_syncz(product_v1=("a", "a")))
    same = parse_syncz(_syncz(product_v1=("a", "a")))
    assert [p.proxy for p in pending_proxies(before, same, quiet_elapsed=False)] == [
        "product-v1.shop"
    ]
    assert pending_proxies(before, same, quiet_elapsed=True) == []


def test_a_new_proxy_needs_only_to_be_synced() -> None:
    now = parse_syncz(_syncz(payment_v1=("c", "c")))
    assert pending_proxies({}, now, quiet_elapsed=False) == []


def test_config_versions_read_istiods_kubernetes_shaped_configs() -> None:
    """``/debug/configz`` lists Kubernetes-shaped objects; their resourceVersion is what the
    runner compares with what its apply returned."""
    text = json.dumps([
        {"kind": "VirtualService", "apiVersion": "networking.istio.io/v1",
         "metadata": {"name": "product", "namespace": "shop", "resourceVersion": "4711"}, "spec": {}},
        {},
    ])  # fmt: skip
    assert config_versions(text) == {("VirtualService", "shop", "product"): "4711"}
