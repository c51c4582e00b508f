"""A lesson that ships its own gateway certificate, like Istio's "Secure Gateways" task.

The lesson folder is written at test time (its keys are made now, never committed): a Secret
``shop-credential`` in istio-system (``kubectl create secret tls``), the CA a curl-like client
trusts (``ca_certificate``), a Gateway with a SIMPLE server naming the Secret and a
VirtualService to the frontend. Step 1: the client trusting the CA is served; step 2: a client
without it never gets past the handshake (nothing reaches the frontend); step 3: the Gateway
names a Secret that does not exist, so even the trusting client fails. Sim and real Envoy
must grade the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.lesson import load_lesson
from mesh.runner import RunOptions
from sim import SimRunner
from tests.fakes import lesson_folder
from tests.tls_secrets import make_ca, secret_yaml

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure-shop, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [shop.example.com]
    tls: {{mode: SIMPLE, credentialName: {credential}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure-shop, namespace: shop}}
spec:
  hosts: [shop.example.com]
  gateways: [secure-shop]
  http: [{{route: [{{destination: {{host: frontend, port: {{number: 8080}}}}}}]}}]
"""

LESSON = """
title: Secure gateways
track: security
objectives: [Serve your own certificate at the ingress gateway]
app: ecommerce
runners: [sim, local]
traffic:
  from: ingress
  to: shop.example.com
  scheme: https
  ca_certificate: shop/example-ca
  requests: [{path: /}]
  rate_rps: 10
  count: 10
steps:
  - name: the client trusts the CA that signed the gateway's certificate
    apply: [istio/credential.yaml, istio/gateway.yaml]
    expect:
      - count: {edge: ingress->frontend}
        equals: 10
  - name: a client without the CA refuses the certificate
    traffic: {ca_certificate: ""}
    expect:
      - count: {edge: ingress->frontend}
        equals: 0
  - name: the Gateway names a Secret that does not exist
    apply: [istio/gateway-typo.yaml]
    expect:
      - count: {edge: ingress->frontend}
        equals: 0
"""


def _lesson(root: Path) -> Path:
    folder = lesson_folder(root, "secure-gateway", LESSON)
    ca = make_ca()
    shop = ca.issue("shop.example.com")
    istio = folder / "istio"
    (istio / "credential.yaml").write_text(
        secret_yaml("shop-credential", "istio-system",
                    {"tls.crt": shop.cert_pem, "tls.key": shop.key_pem})
        + "---\n"
        + secret_yaml("example-ca", "shop", {"cacert": ca.cert_pem}, tls=False)
    )  # fmt: skip
    (istio / "gateway.yaml").write_text(GATEWAY.format(credential="shop-credential"))
    (istio / "gateway-typo.yaml").write_text(GATEWAY.format(credential="shop-credentials"))
    return folder


def _failed(run: object) -> list[str]:
    steps = getattr(run, "steps", ())
    return [f"step {s.index + 1}: {c.describe()}" for s in steps for c in s.checks if not c.passed]


def test_the_lesson_grades_on_sim(tmp_path: Path) -> None:
    lesson = load_lesson(_lesson(tmp_path))
    run = SimRunner().run(lesson, RunOptions(seed=1))
    assert _failed(run) == []
    assert len(run.steps) == 3


@pytest.mark.envoy
def test_the_lesson_grades_on_real_envoy(tmp_path: Path) -> None:
    from cluster.local.runner import LocalRunner

    lesson = load_lesson(_lesson(tmp_path))
    run = LocalRunner().run(lesson, RunOptions(seed=1))
    assert _failed(run) == []
    assert len(run.steps) == 3
