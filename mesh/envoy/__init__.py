"""The Istio -> Envoy translation that the simulator executes and the real Envoys run.

``translate(resources, topology)`` returns, for every sidecar and gateway pod, the listeners,
route configurations, clusters, endpoints and secrets istiod would push to it, as plain Envoy v3
dicts; ``bootstrap(proxy, admin_port=...)`` renders one of them as a static or file-xDS Envoy
bootstrap. Names, type URLs and value encoders come from :mod:`mesh.envoy_api` (shared with
the security builders of :mod:`mesh.security`, whose filters the translator composes).
"""

from mesh.envoy.accesslog import record_from_access_log
from mesh.envoy.bootstrap import bootstrap
from mesh.envoy.ports import PodPorts, PortMap
from mesh.envoy.translate import (
    MeshEnvoyConfig,
    ProxyConfig,
    TranslateOptions,
    translate,
    translate_proxy,
)
from mesh.envoy_api.names import (
    BLACKHOLE_CLUSTER,
    PASSTHROUGH_CLUSTER,
    cluster_name,
    parse_cluster_name,
)

__all__ = [
    "BLACKHOLE_CLUSTER",
    "PASSTHROUGH_CLUSTER",
    "MeshEnvoyConfig",
    "PodPorts",
    "PortMap",
    "ProxyConfig",
    "TranslateOptions",
    "bootstrap",
    "cluster_name",
    "parse_cluster_name",
    "record_from_access_log",
    "translate",
    "translate_proxy",
]
