"""Certificates made at test time, and the Kubernetes Secrets that carry them, as a learner makes
them with ``openssl`` in Istio's "Secure Gateways" task (a root CA for ``example.com``, a
server certificate for ``httpbin.example.com`` signed by it, a client certificate for MUTUAL).

Nothing here is committed key material: every key is generated when a test runs.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["Issued", "make_ca", "secret_yaml"]


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM), its private key (PEM) and the objects to sign others with."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def issue(self, *hosts: str, days: int = 1, not_before_days: int = 0) -> Issued:
        """A leaf certificate for DNS ``hosts`` signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC) + dt.timedelta(days=not_before_days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return Issued(cert, key)


def make_ca(organization: str = "example Inc.", common_name: str = "example.com") -> Issued:
    """A self-signed root (``openssl req -x509 ... -subj '/O=example Inc./CN=example.com'``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def secret_yaml(name: str, namespace: str, data: dict[str, bytes], *, tls: bool = True) -> str:
    """A Secret manifest as ``kubectl create secret tls|generic ... -o yaml`` writes it."""
    kind = "kubernetes.io/tls" if tls else "Opaque"
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        f"metadata: {{name: {name}, namespace: {namespace}}}",
        f"type: {kind}",
        "data:",
    ]
    lines += [f"  {k}: {base64.b64encode(v).decode()}" for k, v in data.items()]
    return "\n".join(lines) + "\n"
