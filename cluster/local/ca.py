"""A local certificate authority that does what istiod's CA does for each sidecar.

istiod signs one workload certificate per service account whose only identity is a SPIFFE URI SAN
``spiffe://<trust domain>/ns/<namespace>/sa/<service account>`` (empty subject, EKU server and
client auth), and hands it to the sidecar over SDS as the secret ``default``; the root
certificate travels as the secret ``ROOTCA``. Sidecars then run ISTIO_MUTUAL: each side presents
its certificate, trusts the root, and the client checks the server's SAN. Here the CA is an
ECDSA P-256 key made with ``cryptography``; secrets are delivered by file-based SDS (files that
Envoy watches; see :mod:`cluster.local.xds`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mesh.envoy_api import type_urls as tu
from mesh.envoy_api.names import SDS_ROOT_CA, SDS_WORKLOAD_CERT

__all__ = ["ROOT_SECRET", "WORKLOAD_SECRET", "IssuedCert", "LocalCA", "spiffe_id"]

WORKLOAD_SECRET = SDS_WORKLOAD_CERT
"""SDS name of a sidecar's own certificate, as istio-agent names it."""
ROOT_SECRET = SDS_ROOT_CA
"""SDS name of the trust bundle."""


def spiffe_id(namespace: str, service_account: str, trust_domain: str = "cluster.local") -> str:
    """``spiffe://cluster.local/ns/<ns>/sa/<sa>``"""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """Files of one workload identity."""

    identity: str
    cert_chain: Path
    private_key: Path
    root: Path

    def secrets(self, *, inline: bool = True) -> dict[str, dict[str, Any]]:
        """The two SDS secrets a sidecar with this identity gets, by name.

        ``inline`` (default) carries the PEM text in the secret, as istio-agent's SDS does;
        a ``filename`` secret makes Envoy watch the certificate files too, which costs an
        inotify instance per folder (see :mod:`cluster.local.xds`)."""

        def source(path: Path) -> dict[str, str]:
            if inline:
                return {"inline_string": path.read_text(encoding="ascii")}
            return {"filename": str(path)}

        return {
            WORKLOAD_SECRET: {
                "@type": tu.SECRET,
                "name": WORKLOAD_SECRET,
                "tls_certificate": {
                    "certificate_chain": source(self.cert_chain),
                    "private_key": source(self.private_key),
                },
            },
            ROOT_SECRET: {
                "@type": tu.SECRET,
                "name": ROOT_SECRET,
                "validation_context": {"trusted_ca": source(self.root)},
            },
        }

    def credential_secrets(self, credential: str) -> list[dict[str, Any]]:
        """The SDS secrets istiod serves a gateway for ``credentialName: credential``:
        ``kubernetes://<credential>`` (certificate and key) and
        ``kubernetes://<credential>-cacert`` (the CA that MUTUAL checks client certificates
        with), PEM inline."""
        return [
            {
                "@type": tu.SECRET,
                "name": f"kubernetes://{credential}",
                "tls_certificate": {
                    "certificate_chain": {"inline_string": self.cert_chain.read_text()},
                    "private_key": {"inline_string": self.private_key.read_text()},
                },
            },
            {
                "@type": tu.SECRET,
                "name": f"kubernetes://{credential}-cacert",
                "validation_context": {"trusted_ca": {"inline_string": self.root.read_text()}},
            },
        ]


class LocalCA:
    """A self-signed root (``O=<trust domain>``, like Istio's self-signed CA) that issues
    SPIFFE workload certificates into ``directory``."""

    def __init__(
        self, directory: Path, trust_domain: str = "cluster.local", valid_days: int = 1
    ) -> None:
        self.directory = directory
        self.trust_domain = trust_domain
        self.valid = dt.timedelta(days=valid_days)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        self.root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.valid * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False
            )
            .sign(self._key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.root_file = directory / "root-cert.pem"
        self.root_file.write_bytes(self.root.public_bytes(serialization.Encoding.PEM))
        self._issued: dict[str, IssuedCert] = {}
        self._servers: dict[tuple[str, tuple[str, ...]], IssuedCert] = {}

    def issue_server(self, name: str, hosts: tuple[str, ...]) -> IssuedCert:
        """A certificate for DNS ``hosts`` (a gateway's ``credentialName`` or a client's
        certificate), signed by this root, stored under ``credentials/<name>/`` (issued once
        per name and hosts, then reused)."""
        known = self._servers.get((name, hosts))
        if known is not None:
            return known
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])]))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.valid)
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        folder = self.directory / "credentials" / name
        folder.mkdir(parents=True, exist_ok=True)
        chain, private = folder / "tls.crt", folder / "tls.key"
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        private.write_bytes(_pem_key(key))
        private.chmod(0o600)
        issued = IssuedCert(name, chain, private, self.root_file)
        self._servers[name, hosts] = issued
        return issued

    def issue(self, namespace: str, service_account: str) -> IssuedCert:
        """The certificate of ``namespace/service_account`` (issued once, then reused)."""
        identity = spiffe_id(namespace, service_account, self.trust_domain)
        if identity in self._issued:
            return self._issued[identity]
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + self.valid)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        folder = self.directory / namespace / service_account
        folder.mkdir(parents=True, exist_ok=True)
        chain = folder / "cert-chain.pem"
        private = folder / "key.pem"
        chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        private.write_bytes(_pem_key(key))
        private.chmod(0o600)
        issued = IssuedCert(identity, chain, private, self.root_file)
        self._issued[identity] = issued
        return issued
