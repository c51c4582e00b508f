"""TLS origination on the local runner: the Secrets a DestinationRule's ``credentialName`` names.

istiod points a cluster that originates TLS with ``credentialName: NAME`` at two SDS secrets,
``kubernetes://NAME`` (a client certificate) and ``kubernetes://NAME-cacert`` (the CA that
verifies the server). meshplay reads no Secrets: the run's :class:`LocalCA` stands in for the
partner's CA (it also issued the certificate of the external server the run starts, see
:mod:`cluster.local.external`), so the ``-cacert`` secret is its root and the certificate one
it issued. Gateway *server* credentials are :mod:`cluster.local.gateway_tls`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cluster.local.ca import LocalCA
from mesh.envoy.translate import ProxyConfig

__all__ = ["origination_credentials", "origination_secrets"]

Json = dict[str, Any]
_PREFIX = "kubernetes://"
_CACERT = "-cacert"


def _sds_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"validation_context_sds_secret_config"} and isinstance(value, dict):
                yield str(value.get("name", ""))
            elif key == "tls_certificate_sds_secret_configs" and isinstance(value, list):
                yield from (str(v.get("name", "")) for v in value if isinstance(v, dict))
            else:
                yield from _sds_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _sds_names(item)


def origination_credentials(config: ProxyConfig) -> tuple[str, ...]:
    """The ``credentialName``s the proxy's clusters originate TLS with (sorted, unique)."""
    names = {
        name.removeprefix(_PREFIX).removesuffix(_CACERT)
        for cluster in config.clusters
        for name in _sds_names(cluster.get("transport_socket") or {})
        if name.startswith(_PREFIX)
    }
    return tuple(sorted(names))


def origination_secrets(config: ProxyConfig, ca: LocalCA) -> list[Json]:
    """Both SDS secrets of every origination ``credentialName`` of ``config``, from ``ca``."""
    secrets: list[Json] = []
    for name in origination_credentials(config):
        cert = ca.issue_server(f"client-{name}", ("client.meshplay.local",))
        secrets.extend(cert.credential_secrets(name))
    return secrets
