"""Gateway credentials: the Kubernetes Secret a ``credentialName`` names, read as istiod reads it.

A Gateway server with ``tls.credentialName: web-cred`` asks its Envoy for the SDS secret
``kubernetes://web-cred``; istiod answers it from the Secret ``web-cred`` **in the gateway pod's
namespace** (``pilot/pkg/model/credentials``: no ``ns/`` prefix means the proxy's namespace):

* the certificate and key come from the generic keys ``cert`` + ``key`` when both are non-empty,
  else from ``tls.crt`` + ``tls.key`` (a ``kubernetes.io/tls`` Secret); neither pair: no secret
  (``pilot/pkg/credentials/kube/secrets.go``, ``ExtractCertInfo``);
* a MUTUAL server also asks for ``kubernetes://web-cred-cacert``: the Secret ``web-cred-cacert``
  if it exists, else ``web-cred`` itself; its CA is ``cacert``, else ``ca.crt`` (``ExtractRoot``).

When the Secret is missing or has neither pair, istiod logs a warning and sends nothing for that
name (``pilot/pkg/xds/sds.go``). credentialName SDS keeps Envoy's default initial fetch timeout
(istiod leaves it set on purpose, ``SDSAdsConfig``): the listener warms for 15 s, then goes
active with that chain's TLS context not ready, and every handshake on the chain fails ("Secret
is not supplied by SDS") while the other chains of the port serve. A certificate that does not
parse, or a key that is not the certificate's, is sent by istiod and rejected by Envoy: the same
chain is not ready. istiod also warns on an expired or not yet valid certificate but sends it.

This module reads Secrets into PEM bytes and says what is wrong with them; the translator emits
the SDS secrets (:func:`sds_secrets`), the analyzer positions the problems (``MPY3020``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from mesh.model import Secret

__all__ = [
    "CA_SUFFIX",
    "CertKeyPair",
    "Credential",
    "CredentialProblem",
    "certificate_names",
    "client_pair",
    "client_trust",
    "find_secret",
    "host_matches",
    "issued_by",
    "read_credential",
    "sds_secrets",
]

CA_SUFFIX = "-cacert"
"""istiod's ``SdsCaSuffix``: ``kubernetes://<name>-cacert`` is the CA of ``<name>``."""
SDS_PREFIX = "kubernetes://"
_PAIRS = (("cert", "key"), ("tls.crt", "tls.key"))
_CAS = ("cacert", "ca.crt")


@dataclass(frozen=True, slots=True)
class CredentialProblem:
    """Why a credential gives Envoy no usable secret: the Secret and the key it is about
    (``""``: the Secret as a whole, or a missing Secret)."""

    secret: Secret | None
    key: str
    message: str
    kind: str = ""
    """``missing``, ``no-pair``, ``bad-base64``, ``bad-cert``, ``expired``, ``bad-key``,
    ``key-mismatch``, ``no-ca``, ``bad-ca``."""

    @property
    def istioctl(self) -> bool:
        """istioctl's SecretAnalyzer flags it (IST0161): no readable pair, or a certificate
        that does not parse or is out of its validity period."""
        return self.kind in {"no-pair", "bad-base64", "bad-cert", "expired"}

    @property
    def blocking(self) -> bool:
        """Envoy gets no usable secret (istiod sends none, or Envoy rejects what it sends)."""
        return self.kind != "expired"


@dataclass(frozen=True, slots=True)
class CertKeyPair:
    """PEM certificate chain and private key, and the keys of the Secret they came from."""

    cert: bytes
    key: bytes
    cert_key: str
    key_key: str


@dataclass(frozen=True, slots=True)
class Credential:
    """What istiod serves for one ``credentialName``: the pair (or why not) and, for MUTUAL,
    the CA (or why not)."""

    name: str
    namespace: str
    pair: CertKeyPair | None
    ca: bytes | None
    problems: tuple[CredentialProblem, ...] = ()
    ca_problems: tuple[CredentialProblem, ...] = ()


def find_secret(secrets: Iterable[Secret], name: str, namespace: str) -> Secret | None:
    """The Secret ``namespace/name`` (the last one applied wins, as with ``kubectl apply``)."""
    found = None
    for s in secrets:
        if s.name == name and s.namespace == namespace:
            found = s
    return found


def _pem_certificates(data: bytes) -> list[x509.Certificate] | str:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        return "the certificate is not PEM that parses (-----BEGIN CERTIFICATE----- ...)"
    return certs or "no PEM certificate in it"


def _pem_key(data: bytes) -> PrivateKeyTypes | str:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return "the private key is not unencrypted PEM that parses (-----BEGIN PRIVATE KEY-----)"


def _public(key: object) -> bytes:
    public = getattr(key, "public_key", None)
    if public is None:
        return b""
    der: bytes = public().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _check_pair(secret: Secret, pair: CertKeyPair, now: dt.datetime) -> list[CredentialProblem]:
    certs = _pem_certificates(pair.cert)
    if isinstance(certs, str):
        return [
            CredentialProblem(
                secret, pair.cert_key, certs + ": Envoy rejects the secret", "bad-cert"
            )
        ]
    out = []
    leaf = certs[0]
    if now < leaf.not_valid_before_utc or now > leaf.not_valid_after_utc:
        out.append(CredentialProblem(secret, pair.cert_key, (
            f"the certificate is expired or not yet valid (valid {leaf.not_valid_before_utc:%Y-%m-%d}"
            f" to {leaf.not_valid_after_utc:%Y-%m-%d}): clients refuse it"), "expired"))  # fmt: skip
    key = _pem_key(pair.key)
    if isinstance(key, str):
        out.append(
            CredentialProblem(secret, pair.key_key, key + ": Envoy rejects the secret", "bad-key")
        )
    elif _public(key) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        out.append(CredentialProblem(secret, pair.key_key, (
            f"the private key does not match the certificate in {pair.cert_key}: Envoy rejects "
            "the secret"), "key-mismatch"))  # fmt: skip
    return out


def _undecodable(secret: Secret, data: dict[str, bytes | None]) -> list[CredentialProblem]:
    return [
        CredentialProblem(secret, k, f'the value of "{k}" is not valid base64', "bad-base64")
        for k, v in data.items()
        if v is None
    ]


def _pair_of(
    secret: Secret, now: dt.datetime
) -> tuple[CertKeyPair | None, list[CredentialProblem]]:
    data = secret.decoded()
    bad = _undecodable(secret, data)
    if bad:
        return None, bad
    for cert_key, key_key in _PAIRS:
        cert, key = data.get(cert_key), data.get(key_key)
        if cert and key:
            pair = CertKeyPair(cert, key, cert_key, key_key)
            problems = _check_pair(secret, pair, now)
            return (None if any(p.blocking for p in problems) else pair), problems
    for cert_key, key_key in _PAIRS:
        if cert_key in data and key_key in data:
            return None, [CredentialProblem(secret, "", (
                f'found keys "{cert_key}" and "{key_key}", but they are empty'), "no-pair")]  # fmt: skip
    present = {k for k in data if any(k in p for p in _PAIRS)}
    missing = next((k for c, kk in _PAIRS for k in (c, kk) if {c, kk} & present and k not in data),
                   "")  # fmt: skip
    found = ", ".join(sorted(data)) or "no keys"
    return None, [CredentialProblem(secret, "", (
        f'no certificate: istiod reads "cert" and "key", or "tls.crt" and "tls.key"'
        f"{f' (missing {missing})' if missing else ''}; found: {found}"), "no-pair")]  # fmt: skip


def _ca_of(secret: Secret) -> tuple[bytes | None, list[CredentialProblem]]:
    data = secret.decoded()
    bad = _undecodable(secret, data)
    if bad:
        return None, bad
    for key in _CAS:
        value = data.get(key)
        if value:
            certs = _pem_certificates(value)
            if isinstance(certs, str):
                why = certs + ": Envoy rejects the secret"
                return None, [CredentialProblem(secret, key, why, "bad-ca")]
            return value, []
    found = ", ".join(sorted(data)) or "no keys"
    return None, [
        CredentialProblem(
            secret,
            "",
            (f'no CA certificate for MUTUAL: istiod reads "cacert" or "ca.crt"; found: {found}'),
            "no-ca",
        )
    ]


def read_credential(
    secrets: Iterable[Secret],
    name: str,
    namespace: str,
    *,
    mutual: bool,
    now: dt.datetime | None = None,
) -> Credential:
    """What istiod makes of ``credentialName: name`` for a gateway in ``namespace``."""
    pool = list(secrets)
    when = now or dt.datetime.now(dt.UTC)
    secret = find_secret(pool, name, namespace)
    pair: CertKeyPair | None = None
    problems: list[CredentialProblem] = []
    if secret is None:
        problems.append(
            CredentialProblem(None, "", f"secret {namespace}/{name} not found", "missing")
        )
    else:
        pair, problems = _pair_of(secret, when)
    ca: bytes | None = None
    ca_problems: list[CredentialProblem] = []
    if mutual:
        holder = find_secret(pool, name + CA_SUFFIX, namespace) or secret
        if holder is None:
            ca_problems.append(
                CredentialProblem(
                    None, "", f"secret {namespace}/{name}{CA_SUFFIX} not found", "missing"
                )
            )
        else:
            ca, ca_problems = _ca_of(holder)
    return Credential(name, namespace, pair, ca, tuple(problems), tuple(ca_problems))


def sds_secrets(credential: Credential) -> list[dict[str, object]]:
    """The Envoy ``Secret`` resources (plain dicts, no ``@type``) istiod sends for ``credential`` (PEM as ``inline_bytes``,
    as istiod does): ``kubernetes://<name>`` when the pair is usable and
    ``kubernetes://<name>-cacert`` when the CA is; nothing for what is missing or broken."""
    out: list[dict[str, object]] = []
    if credential.pair is not None:
        out.append({
            "name": SDS_PREFIX + credential.name,
            "tls_certificate": {
                "certificate_chain": {"inline_bytes": _b64(credential.pair.cert)},
                "private_key": {"inline_bytes": _b64(credential.pair.key)},
            },
        })  # fmt: skip
    if credential.ca is not None:
        out.append({
            "name": SDS_PREFIX + credential.name + CA_SUFFIX,
            "validation_context": {"trusted_ca": {"inline_bytes": _b64(credential.ca)}},
        })  # fmt: skip
    return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@functools.lru_cache(maxsize=256)
def certificate_names(cert_pem: bytes) -> tuple[str, ...]:
    """The DNS names a server certificate is valid for (its SAN DNS names; without a SAN
    extension, none: modern TLS clients ignore the subject CN)."""
    certs = _pem_certificates(cert_pem)
    if isinstance(certs, str):
        return ()
    try:
        san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.value.get_values_for_type(x509.DNSName))


@functools.lru_cache(maxsize=256)
def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether the first certificate of ``cert_pem`` is ``ca_pem``'s (any certificate of the
    bundle) or one of them signed it directly: what a TLS client trusting ``ca_pem`` accepts
    (one level: a chain with intermediates is followed through ``cert_pem``'s own bundle)."""
    certs = _pem_certificates(cert_pem)
    roots = _pem_certificates(ca_pem)
    if isinstance(certs, str) or isinstance(roots, str):
        return False
    chain = list(certs)
    if any(chain[0] == root for root in roots):
        return True
    for i, cert in enumerate(chain):
        if any(_signed(cert, root) for root in roots):
            # every link below must be signed by the next certificate of the bundle
            return all(_signed(chain[j], chain[j + 1]) for j in range(i))
    return False


def _signed(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:
        return False
    return True


def host_matches(names: Iterable[str], host: str) -> bool:
    """RFC 6125 matching as TLS clients do it: exact (case-insensitive), or ``*.example.com``
    matching exactly one label in front of ``example.com``."""
    host = host.lower().rstrip(".")
    for name in names:
        n = name.lower().rstrip(".")
        if n == host:
            return True
        if n.startswith("*.") and "." in host and host.split(".", 1)[1] == n[2:]:
            return True
    return False


def _by_ref(secrets: Iterable[Secret], ref: str) -> Secret | None:
    namespace, _, name = ref.rpartition("/")
    found = None
    for s in secrets:
        if s.name == name and (not namespace or s.namespace == namespace):
            found = s
    return found


def client_trust(secrets: Iterable[Secret], ref: str) -> bytes | None:
    """The CA certificate(s) a TLS client given ``ref`` (``name`` or ``ns/name`` of a Secret)
    trusts, like ``curl --cacert``: its ``cacert`` / ``ca.crt``, else its ``cert`` /
    ``tls.crt`` (a self-signed root stored as a certificate). None when there is no such
    Secret or it holds no certificate."""
    secret = _by_ref(secrets, ref)
    if secret is None:
        return None
    data = secret.decoded()
    for key in (*_CAS, "cert", "tls.crt"):
        value = data.get(key)
        if value:
            return value
    return None


def client_pair(secrets: Iterable[Secret], ref: str) -> CertKeyPair | None:
    """The certificate and key a TLS client presents when given the Secret ``ref`` (``curl
    --cert --key``): ``cert``/``key`` or ``tls.crt``/``tls.key``; None when absent."""
    secret = _by_ref(secrets, ref)
    if secret is None:
        return None
    data = secret.decoded()
    for cert_key, key_key in _PAIRS:
        cert, key = data.get(cert_key), data.get(key_key)
        if cert and key:
            return CertKeyPair(cert, key, cert_key, key_key)
    return None
