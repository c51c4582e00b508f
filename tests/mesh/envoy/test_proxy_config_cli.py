"""``meshplay proxy-config``: istioctl-like tables, raw output, errors (tests for
``playground/commands/proxy_config.py``, kept next to the translator they display)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from playground.commands import proxy_config

TESTDATA = Path(__file__).parent / "testdata"
INPUT = [str(TESTDATA / "base.yaml"), str(TESTDATA / "weights" / "input.yaml")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    proxy_config.register(sub)
    args = parser.parse_args(list(argv))
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_clusters_table_reads_like_istioctl(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "proxy-config", "clusters", *INPUT, "--proxy", "frontend-v1")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "SERVICE",
        "FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "TYPE",
        "DESTINATION",
        "RULE",
    ]
    v2 = next(line for line in lines if " v2 " in line)
    assert v2.split() == [
        "product.shop.svc.cluster.local",
        "8080",
        "v2",
        "outbound",
        "EDS",
        "product.shop",
    ]
    assert any(line.startswith("BlackHoleCluster") for line in lines)


def test_routes_table_shows_matches_and_the_virtual_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "pc", "routes", *INPUT, "--proxy", "frontend-v1-0.shop")
    assert code == 0
    product = [
        line.split() for line in out.splitlines() if "product.shop.svc.cluster.local:8080" in line
    ]
    assert [row[-2] for row in product] == ["/three*", "/undefined-subset*", "/*"]
    assert {row[-1] for row in product} == {"product.shop"}


def test_listeners_and_endpoints_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "proxy-config", "all", *INPUT, "--proxy", "frontend-v1")
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert ["0.0.0.0", "15001", "ALL", "Cluster:", "PassthroughCluster"] in rows
    # the ingress gateway's TCP (https) port is a listener at the gateway Service's VIP only
    gateway = [r for r in rows if r[1:2] == ["443"] and r[3:4] == ["Cluster:"]]
    assert [r[0].startswith("10.96.") for r in gateway] == [True]
    assert gateway[0][-1] == "outbound|443||istio-ingressgateway.istio-system.svc.cluster.local"
    assert "Route: 8080" in out
    endpoint_rows = [line for line in out.splitlines() if "outbound|8080|v1|product" in line]
    assert len(endpoint_rows) == 2  # the two v1 replicas


def test_listener_matches_read_like_istioctl(capsys: pytest.CaptureFixture[str]) -> None:
    tcp = str(TESTDATA / "tcp" / "input.yaml")
    code, out, _ = run(
        capsys,
        "proxy-config",
        "listeners",
        str(TESTDATA / "base.yaml"),
        tcp,
        "--proxy",
        "frontend-v1",
    )
    assert code == 0
    rows = [[cell for cell in line.split("  ") if cell.strip()] for line in out.splitlines()]
    rows = [[c.strip() for c in r] for r in rows]
    # a ServiceEntry CIDR is a chain matched on the destination address, the rest falls through
    # to the listener's default chain; inbound chains show transport and ALPN
    assert [
        "0.0.0.0",
        "27017",
        "Addr: 192.0.2.0/24",
        "Cluster: outbound|27017||mongo.example.com",
    ] in rows
    assert ["0.0.0.0", "27017", "ALL (default chain)", "Cluster: PassthroughCluster"] in rows
    assert ["0.0.0.0", "15006", "Trans: raw_buffer; Addr: *:8080", "Route: inbound|8080||"] in rows
    assert any(r[2].startswith("Trans: tls; App: istio-peer-exchange,") for r in rows)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_raw_output_is_the_envoy_config(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, _ = run(
        capsys, "proxy-config", "routes", *INPUT, "--proxy", "frontend-v1", "-o", fmt
    )
    assert code == 0
    data = json.loads(out) if fmt == "json" else yaml.safe_load(out)
    # "80": the ingress gateway's http2 port, which every Istio install has
    assert [r["name"] for r in data] == [
        "80",
        "8080",
        "9080",
        "InboundPassthroughCluster",
        "inbound|8080||",
    ]


def test_unknown_proxy_lists_the_proxies(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "proxy-config", "clusters", *INPUT, "--proxy", "nosuch")
    assert code == 2
    assert "frontend-v1-0" in err


def test_invalid_input_prints_diagnostics_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\n"
        "spec: {hosts: [a], http: [{timeout: soon}]}\n"
    )
    code, _, err = run(capsys, "proxy-config", "routes", str(bad), "--proxy", "frontend-v1")
    assert code == 2
    assert "bad.yaml:4:" in err and "error[" in err
