"""TLS at the local ingress gateway: the certificates a Gateway's ``credentialName`` names, and
the client side of ``scheme: https`` traffic.

istiod hands a gateway the Kubernetes Secret ``credentialName`` over SDS as
``kubernetes://<name>`` (and its CA as ``kubernetes://<name>-cacert``). meshplay reads no
Secrets: for every such name a gateway's listeners ask for, the run's :class:`LocalCA` issues a
certificate for the hosts of the filter chain that uses it (its ``server_names``), so a client
trusting that CA verifies the gateway, and MUTUAL servers accept client certificates the same
CA issued (:func:`client_context`).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from typing import Any

from cluster.local.ca import LocalCA
from mesh.envoy.translate import ProxyConfig

__all__ = ["client_context", "credential_secrets", "credentials_of"]

Json = dict[str, Any]
_PREFIX = "kubernetes://"
_CACERT = "-cacert"


def _chains(listeners: Iterable[Json]) -> Iterator[Json]:
    for listener in listeners:
        yield from listener.get("filter_chains") or ()


def credentials_of(config: ProxyConfig) -> dict[str, tuple[str, ...]]:
    """``credentialName`` -> the SNI hosts of the chains presenting it (sorted, unique)."""
    out: dict[str, set[str]] = {}
    for chain in _chains(config.listeners):
        socket = chain.get("transport_socket") or {}
        common = (socket.get("typed_config") or {}).get("common_tls_context") or {}
        hosts = (chain.get("filter_chain_match") or {}).get("server_names") or ()
        for ref in common.get("tls_certificate_sds_secret_configs") or ():
            name = str(ref.get("name", ""))
            if name.startswith(_PREFIX):
                out.setdefault(name.removeprefix(_PREFIX), set()).update(hosts)
    return {name: tuple(sorted(hosts)) for name, hosts in sorted(out.items())}


def credential_secrets(config: ProxyConfig, ca: LocalCA) -> list[Json]:
    """The ``kubernetes://`` SDS secrets ``config``'s TLS chains name, issued by ``ca``."""
    secrets: list[Json] = []
    for name, hosts in credentials_of(config).items():
        cert = ca.issue_server(name, hosts or ("*.example.com",))
        secrets.extend(cert.credential_secrets(name))
    return secrets


def client_context(ca: LocalCA, *, client_certificate: bool) -> ssl.SSLContext:
    """A TLS client trusting the run's CA (it checks the gateway's certificate against the SNI
    host), offering ``http/1.1``, with a CA-issued client certificate when asked."""
    ctx = ssl.create_default_context(cafile=str(ca.root_file))
    ctx.set_alpn_protocols(["http/1.1"])
    if client_certificate:
        cert = ca.issue_server("meshplay-client", ("client.meshplay.local",))
        ctx.load_cert_chain(str(cert.cert_chain), str(cert.private_key))
    return ctx
