"""The static half of a VirtualService ``tls`` / ``tcp`` match, as istiod evaluates it.

istiod splits a ``TLSMatchAttributes`` / ``L4MatchAttributes`` in two (``matchTLS`` /
``matchTCP`` in ``pilot/pkg/networking/core/tls.go``). What it knows when it builds one proxy's
config it decides then, and the match either yields a filter chain for that proxy or not:

* ``sourceLabels``: the proxy's own labels must include them. A rule with ``sourceLabels``
  therefore exists only on the sidecars (or gateway pods) of the workloads it selects; every
  other client sidecar gets the next rule, or the service's default chain.
* ``sourceNamespace``: the proxy's namespace.
* ``port``: the listener's port (``0``/unset: any); ``gateways``: the proxy's gateways
  (``mesh`` for a sidecar).

What only the connection can tell becomes the chain's match in Envoy: ``sniHosts`` as
``server_names``, ``destinationSubnets`` as ``prefix_ranges``. meshplay models ``sniHosts``;
``destinationSubnets`` is reported as not modelled (MPY2001) and a match that sets it yields no
chain (docs/translation.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from mesh.model.virtual_service import L4MatchAttributes, TLSMatchAttributes

__all__ = ["static_match"]


def static_match(
    match: TLSMatchAttributes | L4MatchAttributes,
    *,
    labels: Mapping[str, str],
    namespace: str,
    port: int,
    gateways: tuple[str, ...],
    proxy_gateway: str = "mesh",
) -> bool:
    """Whether ``match`` applies to a proxy with ``labels`` in ``namespace`` on listener
    ``port`` (``gateways``: the VirtualService's, used when the match names none)."""
    if any(labels.get(k) != v for k, v in match.source_labels.items()):
        return False
    if match.source_namespace and match.source_namespace != namespace:
        return False
    if match.port not in (None, 0, port):
        return False
    return proxy_gateway in (match.gateways or gateways or ("mesh",))
