"""``proxy-config`` takes the proxy as istioctl does (``pc routes POD``, ``deploy/NAME``, with or
without PATH) and ``--live`` needs no PATH; ``proxy-status`` reads istiod's sync states."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
LESSON = str(ROOT / "lessons" / "01-request-routing")
APP = str(ROOT / "lessons" / "apps" / "ecommerce")


def first_route_names(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines()[1:] if line.strip()]


@pytest.mark.parametrize(
    "argv",
    [
        ["routes", "api-gateway-v1-0", LESSON],
        ["routes", LESSON, "api-gateway-v1-0"],
        ["routes", "deploy/api-gateway-v1", LESSON],
        ["routes", "api-gateway-v1-0.shop", LESSON],
        ["routes", LESSON, "--proxy", "api-gateway-v1"],  # today's form keeps working
    ],
)
def test_the_proxy_is_a_positional_argument_like_istioctl(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy-config", *argv]) == 0
    out = capsys.readouterr().out
    assert "product.shop.svc.cluster.local:8080" in out
    assert "/products/*" in out  # lesson 01's last step routes item pages


def test_an_app_folder_is_a_path_like_any_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pc", "clusters", "deploy/product-v2", APP]) == 0
    assert "product.shop.svc.cluster.local" in capsys.readouterr().out


def test_which_argument_is_the_proxy() -> None:
    from playground.commands.proxy_config import split_targets
    from playground.inputs import InputError

    assert split_targets(["deploy/x", LESSON], None) == ("deploy/x", [LESSON])
    assert split_targets([LESSON], "p-0") == ("p-0", [LESSON])
    assert split_targets(["p-0"], None) == ("p-0", [])
    with pytest.raises(InputError, match="no such file or folder"):
        split_targets(["lessons/01-request-routin"], "p-0")  # a typo is not a pod
    with pytest.raises(InputError, match="which proxy"):
        split_targets([LESSON], None)


def test_no_path_reads_the_running_mesh_and_says_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MESHPLAY_STATE_DIR", str(tmp_path))
    assert main(["proxy-config", "routes", "api-gateway-v1-0"]) == 2
    err = capsys.readouterr().err
    assert "no local mesh is up: start one with meshplay up" in err
    assert main(["proxy-config", "routes", "--live", "--proxy", "api-gateway-v1-0"]) == 2


def _listener(name: str, route: dict[str, Any]) -> dict[str, Any]:
    hcm = {"name": "hcm", "typed_config": {"route_config": route}}
    return {"name": name, "address": {"socket_address": {"address": "0.0.0.0", "port_value": 1}},
            "filter_chains": [{"filters": [hcm]}, {"filters": [hcm]}]}  # fmt: skip


def test_a_route_config_inlined_in_several_listeners_is_listed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The local mesh inlines each route configuration into its listeners (and the same one
    into several filter chains): the live table shows it once, as istioctl does with RDS."""
    from cluster.local import state

    monkeypatch.setenv("MESHPLAY_STATE_DIR", str(tmp_path))
    pod = {"name": "api-gateway-v1-0", "workload": "api-gateway-v1", "namespace": "shop",
           "proxy": "sidecar", "admin_port": 1, "knob_port": 0, "listeners": {}, "inbound": {},
           "app": {}, "access_log": ""}  # fmt: skip
    record = {"workdir": str(tmp_path), "app": "ecommerce", "started_at": 0.0, "pods": [pod]}
    (tmp_path / "local.json").write_text(json.dumps(record))
    route = {"name": "8080", "virtual_hosts": [
        {"name": "product.shop.svc.cluster.local:8080", "domains": ["product"],
         "routes": [{"match": {"prefix": "/"}}]}]}  # fmt: skip
    dump = {"configs": [{"dynamic_listeners": [
        {"active_state": {"listener": _listener("0.0.0.0_8080", route)}},
        {"active_state": {"listener": _listener("virtualOutbound", route)}}]}]}  # fmt: skip
    monkeypatch.setattr(state, "live_config_dump", lambda pod, resource="": dump)
    assert main(["pc", "routes", "deploy/api-gateway-v1"]) == 0
    assert first_route_names(capsys.readouterr().out) == ["product.shop.svc.cluster.local:8080"]


def test_sync_states_mean_what_istiod_means() -> None:
    from playground.commands.proxy_status import sync_state

    assert sync_state([], []) == "NOT_SENT"  # nothing of that type was ever sent
    assert sync_state(["3"], ["3"]) == "SYNCED"  # the last one sent was acknowledged
    assert sync_state(["4"], ["3"]) == "STALE"  # sent, not (yet) acknowledged, or NACKed
    assert sync_state(["3", "4"], ["3", None]) == "STALE"


def test_yaml_output_writes_shared_values_out_like_istioctl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Clusters that share one circuit-breaker value print it in full each time: no YAML
    anchors and aliases (``&id001`` / ``*id001``), which istioctl never prints."""
    lesson = str(ROOT / "lessons" / "08-circuit-breaking")
    argv = ["pc", "clusters", "deploy/api-gateway-v1", lesson, "-o", "yaml"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("circuit_breakers:") > 1
    assert "&id" not in out and "*id" not in out
