"""A Gateway's credentialName read as istiod reads the Secret, and the problems Envoy would
refuse, positioned at the Secret's key (certificates made at run time)."""

from __future__ import annotations

import base64

from mesh.analyze import analyze
from mesh.model import Secret
from mesh.security.credentials import (
    client_trust,
    host_matches,
    issued_by,
    read_credential,
    sds_secrets,
)
from mesh.source import load_text
from tests.tls_secrets import make_ca, secret_yaml

CA = make_ca()
WEB = CA.issue("httpbin.example.com")
OTHER = CA.issue("other.example.com")

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mygateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: MUTUAL, credentialName: httpbin-credential}
---
"""


def _secrets(text: str) -> list[Secret]:
    loaded = load_text(text, "s.yaml")
    assert loaded.ok, [d.render() for d in loaded.errors]
    return [r for r in loaded.resources if isinstance(r, Secret)]


def test_generic_keys_win_over_tls_keys_and_the_ca_comes_from_the_cacert_secret() -> None:
    # istiod: cert+key first, else tls.crt+tls.key; <name>-cacert first, else <name>
    text = "---\n".join([
        secret_yaml("cred", "istio-system", {"cert": WEB.cert_pem, "key": WEB.key_pem,
                                              "tls.crt": OTHER.cert_pem, "tls.key": OTHER.key_pem,
                                              "ca.crt": OTHER.cert_pem}, tls=False),
        secret_yaml("cred-cacert", "istio-system", {"cacert": CA.cert_pem}, tls=False),
    ])  # fmt: skip
    cred = read_credential(_secrets(text), "cred", "istio-system", mutual=True)
    assert cred.pair is not None and cred.pair.cert == WEB.cert_pem
    assert cred.ca == CA.cert_pem
    names = [s["name"] for s in sds_secrets(cred)]
    assert names == ["kubernetes://cred", "kubernetes://cred-cacert"]
    chain = sds_secrets(cred)[0]["tls_certificate"]
    assert isinstance(chain, dict)
    assert base64.b64decode(chain["certificate_chain"]["inline_bytes"]) == WEB.cert_pem


def test_the_secret_must_be_in_the_gateway_pods_namespace() -> None:
    text = secret_yaml("cred", "default", {"tls.crt": WEB.cert_pem, "tls.key": WEB.key_pem})
    cred = read_credential(_secrets(text), "cred", "istio-system", mutual=False)
    assert cred.pair is None and [p.kind for p in cred.problems] == ["missing"]
    assert sds_secrets(cred) == []


def test_a_key_that_is_not_the_certificates_is_refused_at_its_key() -> None:
    # istioctl does not check it (no IST0161); Envoy rejects the secret: MPY3020 at tls.key
    text = GATEWAY + secret_yaml(
        "httpbin-credential", "istio-system",
        {"tls.crt": WEB.cert_pem, "tls.key": OTHER.key_pem, "ca.crt": CA.cert_pem},
    )  # fmt: skip
    loaded = load_text(text, "gw.yaml")
    found = [d for d in analyze(loaded.resources) if d.file == "gw.yaml"]
    assert [(d.code, d.path) for d in found] == [("MPY3020", 'data["tls.key"]')]
    assert "does not match the certificate" in found[0].message
    assert (found[0].line, found[0].column) == (18, 12)
    cred = read_credential(_secrets(text.split("---\n")[-1]), "httpbin-credential",
                           "istio-system", mutual=True)  # fmt: skip
    assert cred.pair is None  # no kubernetes://httpbin-credential: the chain is not ready


def test_an_expired_certificate_is_istioctls_ist0161_but_still_served() -> None:
    old = CA.issue("httpbin.example.com", days=1, not_before_days=-5)
    text = GATEWAY + secret_yaml(
        "httpbin-credential", "istio-system",
        {"tls.crt": old.cert_pem, "tls.key": old.key_pem, "ca.crt": CA.cert_pem},
    )  # fmt: skip
    found = [d for d in analyze(load_text(text, "gw.yaml").resources) if d.file == "gw.yaml"]
    assert sorted(d.code for d in found) == ["IST0161", "MPY3020"]
    cred = read_credential(_secrets(text.split("---\n")[-1]), "httpbin-credential",
                           "istio-system", mutual=True)  # fmt: skip
    assert cred.pair is not None  # istiod warns and sends it; clients refuse it


def test_a_good_credential_gives_no_diagnostic() -> None:
    text = GATEWAY + secret_yaml(
        "httpbin-credential", "istio-system",
        {"tls.crt": WEB.cert_pem, "tls.key": WEB.key_pem, "ca.crt": CA.cert_pem},
    )  # fmt: skip
    found = [d for d in analyze(load_text(text, "gw.yaml").resources) if d.file == "gw.yaml"]
    assert found == []


def test_client_trust_and_host_matching_as_tls_clients_do() -> None:
    secrets = _secrets(secret_yaml("ca", "x", {"cacert": CA.cert_pem}, tls=False))
    trust = client_trust(secrets, "x/ca")
    assert trust == CA.cert_pem
    assert issued_by(WEB.cert_pem, CA.cert_pem)
    assert not issued_by(WEB.cert_pem, make_ca("b", "b.org").cert_pem)
    assert host_matches(["*.example.com"], "httpbin.example.com")
    assert not host_matches(["*.example.com"], "a.b.example.com")
    assert not host_matches(["httpbin.example.com"], "other.example.com")


def test_a_missing_key_is_named() -> None:
    text = GATEWAY + secret_yaml("httpbin-credential", "istio-system", {"tls.crt": WEB.cert_pem})
    found = [d for d in analyze(load_text(text, "gw.yaml").resources) if d.file == "gw.yaml"]
    assert sorted(d.code for d in found) == ["IST0161", "MPY3020", "MPY3020"]
    messages = " ".join(d.message for d in found)
    assert "(missing tls.key)" in messages
    assert 'no CA certificate for MUTUAL: istiod reads "cacert" or "ca.crt"' in messages
