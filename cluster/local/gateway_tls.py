"""TLS at the local ingress gateway: the credentials a Gateway's ``credentialName`` names, and
the client side of ``scheme: https`` traffic.

istiod hands a gateway the Kubernetes Secret ``credentialName`` (in the gateway pod's
namespace) over SDS as ``kubernetes://<name>`` and its CA as ``kubernetes://<name>-cacert``; the
translator reads the lesson's Secrets the same way and puts those SDS secrets in the gateway's
:class:`~mesh.envoy.translate.ProxyConfig` (:mod:`mesh.security.credentials`), and the local
runner serves exactly them, by file. A name without a usable Secret gets an SDS file with no
resource (:func:`absent_credentials`), which is what Envoy sees when istiod answers nothing: the
listener still serves its other chains, and every handshake on that chain fails.

The run's :class:`LocalCA` issues only what istiod's CA would: workload certificates (``default``,
``ROOTCA``), which an ``ISTIO_MUTUAL`` gateway server presents too. It never invents a
``credentialName`` certificate.

The client of ``scheme: https`` traffic (:func:`client_context`) trusts the CA of the Secret
``ca_certificate`` names (``curl --cacert``), else the run's CA, checks the certificate against
the SNI host, and presents the certificate and key of ``client_certificate`` (``curl --cert
--key``) when set.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cluster.local.ca import LocalCA
from mesh.envoy.translate import ProxyConfig
from mesh.lesson import TrafficSpec
from mesh.model import Resource, Secret
from mesh.runner import RunnerError
from mesh.security.credentials import client_pair, client_trust

__all__ = ["absent_credentials", "client_context", "credentials_of"]

Json = dict[str, Any]
_PREFIX = "kubernetes://"
_FILE_PREFIXES = ("file-cert:", "file-root:")
"""istio-agent's names for certificate files mounted in the gateway pod (``serverCertificate``,
``privateKey``, ``caCertificates``): a local gateway has no such files, so they stay absent."""


def _chains(listeners: Iterable[Json]) -> Iterator[Json]:
    for listener in listeners:
        yield from listener.get("filter_chains") or ()


def _sds_names(chain: Json) -> Iterator[str]:
    socket = chain.get("transport_socket") or {}
    common = (socket.get("typed_config") or {}).get("common_tls_context") or {}
    for ref in common.get("tls_certificate_sds_secret_configs") or ():
        yield str(ref.get("name", ""))
    combined = common.get("combined_validation_context") or {}
    ref = combined.get("validation_context_sds_secret_config") or {}
    if ref:
        yield str(ref.get("name", ""))


def credentials_of(config: ProxyConfig) -> dict[str, tuple[str, ...]]:
    """``kubernetes://`` (and mounted-file) SDS name -> the SNI hosts of the chains asking for
    it (sorted)."""
    out: dict[str, set[str]] = {}
    for chain in _chains(config.listeners):
        hosts = (chain.get("filter_chain_match") or {}).get("server_names") or ()
        for name in _sds_names(chain):
            if name.startswith((_PREFIX, *_FILE_PREFIXES)):
                out.setdefault(name, set()).update(hosts)
    return {name: tuple(sorted(hosts)) for name, hosts in sorted(out.items())}


def absent_credentials(config: ProxyConfig) -> list[str]:
    """The SDS names ``config``'s chains ask for that it has no secret for: a ``kubernetes://``
    credential without a usable Secret, or files a real gateway pod would have mounted."""
    supplied = {str(s.get("name", "")) for s in config.secrets}
    return [name for name in credentials_of(config) if name not in supplied]


def client_context(
    ca: LocalCA, spec: TrafficSpec, resources: Iterable[Resource], folder: Path
) -> ssl.SSLContext:
    """A TLS client as ``spec`` describes it (offering ``http/1.1``; it checks the gateway's
    certificate against the SNI host). Client key files are written under ``folder``."""
    secrets = [r for r in resources if isinstance(r, Secret)]
    if spec.ca_certificate:
        trust = client_trust(secrets, spec.ca_certificate)
        if trust is None:
            raise RunnerError(
                f'ca_certificate: no Secret "{spec.ca_certificate}" with a certificate'
            )
        ctx = ssl.create_default_context(cadata=trust.decode("ascii", "replace"))
    else:
        ctx = ssl.create_default_context(cafile=str(ca.root_file))
    ctx.set_alpn_protocols(["http/1.1"])
    if spec.client_certificate:
        pair = client_pair(secrets, spec.client_certificate)
        if pair is None:
            raise RunnerError(
                f'client_certificate: no Secret "{spec.client_certificate}" with a certificate '
                "and key"
            )
        folder.mkdir(parents=True, exist_ok=True)
        stem = spec.client_certificate.replace("/", "_")
        cert, key = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert.write_bytes(pair.cert)
        key.touch(mode=0o600)
        key.write_bytes(pair.key)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx
