"""The ``IST`` codes meshplay reports: Istio's own, with exactly ``istioctl analyze``'s meaning,
level and text (part of :data:`mesh.diagnostics.CATALOG`)."""

from __future__ import annotations

from mesh.diagnostics.code import Code, Level

__all__ = ["ISTIO_CODES"]

E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - short level aliases for the table

ISTIO_CODES: tuple[Code, ...] = (
    # --- Istio's own codes, used with exactly istioctl analyze's meaning, level and text ---------
    Code(
        "IST0002",
        "Deprecated",
        W,
        "A deprecated field is set (fault.delay.percent, Sidecar egressProxy).",
    ),
    Code(
        "IST0101",
        "ReferencedResourceNotFound",
        E,
        "A referenced host, host:port, subset, gateway, selector, namespace or credentialName "
        "Secret does not exist.",
    ),
    Code("IST0102", "NamespaceNotInjected", I, "A namespace has no sidecar injection label."),
    Code(
        "IST0106",
        "SchemaValidationError",
        E,
        "The resource fails Istio's schema or validation webhook: unknown field, wrong type, "
        "missing required field, value out of range.",
    ),
    Code(
        "IST0107",
        "MisplacedAnnotation",
        W,
        "An Istio annotation is on a kind it does not apply to.",
    ),
    Code(
        "IST0108",
        "UnknownAnnotation",
        W,
        "An annotation with an istio.io prefix that Istio does not define.",
    ),
    Code(
        "IST0109",
        "ConflictingMeshGatewayVirtualServiceHosts",
        E,
        "Several VirtualServices bound to the mesh define the same host; a sidecar keeps one.",
    ),
    Code(
        "IST0110",
        "ConflictingSidecarWorkloadSelectors",
        E,
        "Several Sidecar resources select the same workload.",
    ),
    Code(
        "IST0111",
        "MultipleSidecarsWithoutWorkloadSelectors",
        E,
        "More than one Sidecar without a workloadSelector in one namespace.",
    ),
    Code(
        "IST0112",
        "VirtualServiceDestinationPortSelectorRequired",
        E,
        "The destination service has several ports and the route gives no destination.port.",
    ),
    Code(
        "IST0116",
        "DeploymentAssociatedToMultipleServices",
        W,
        "Services of one workload give the same port different transport protocols.",
    ),
    Code(
        "IST0118",
        "PortNameIsNotUnderNamingConvention",
        I,
        "A Service port name has no protocol prefix and no appProtocol; Istio will sniff it.",
    ),
    Code(
        "IST0123",
        "NamespaceMultipleInjectionLabels",
        W,
        "A namespace carries several injection labels (istio-injection and istio.io/rev).",
    ),
    Code(
        "IST0125",
        "InvalidAnnotation",
        W,
        "A pod annotation has a value the sidecar injector rejects.",
    ),
    Code(
        "IST0127",
        "NoMatchingWorkloadsFound",
        W,
        "A policy's selector (or, without selector, its namespace) matches no workload with a "
        "proxy, so it has no effect.",
    ),
    Code(
        "IST0128",
        "NoServerCertificateVerificationDestinationLevel",
        W,
        "DestinationRule TLS SIMPLE/MUTUAL without caCertificates: the server is not verified.",
    ),
    Code(
        "IST0129",
        "NoServerCertificateVerificationPortLevel",
        W,
        "The same, in a portLevelSettings entry.",
    ),
    Code(
        "IST0130",
        "VirtualServiceUnreachableRule",
        W,
        "An HTTP/TCP/TLS rule can never match: it follows a rule without match, or repeats earlier "
        "matches exactly.",
    ),
    Code(
        "IST0131",
        "VirtualServiceIneffectiveMatch",
        I,
        "A match repeats an earlier one, or an earlier shorter uri prefix with the same other "
        "conditions takes all its requests.",
    ),
    Code(
        "IST0132",
        "VirtualServiceHostNotFoundInGateway",
        W,
        "None of a VirtualService's hosts is admitted by a Gateway it binds to.",
    ),
    Code(
        "IST0133",
        "SchemaWarning",
        W,
        "Istio's validation webhook accepts the resource with a warning.",
    ),
    Code(
        "IST0134",
        "ServiceEntryAddressesRequired",
        W,
        "A TCP port on a ServiceEntry that has no address: sidecars cannot route it to the entry.",
    ),
    Code("IST0135", "DeprecatedAnnotation", I, "A deprecated Istio annotation is used."),
    Code(
        "IST0137",
        "DeploymentConflictingPorts",
        W,
        "Services of one workload send different ports to the same targetPort.",
    ),
    Code(
        "IST0138",
        "GatewayDuplicateCertificate",
        W,
        "Gateways on the same pods serve the same certificate: HTTP/2 connection reuse gives 404s.",
    ),
    Code(
        "IST0140",
        "IngressRouteRulesNotAffected",
        W,
        "A gateway route has no subset while a mesh VirtualService splits the host by subsets; "
        "ingress traffic ignores that split.",
    ),
    Code(
        "IST0145",
        "ConflictingGateways",
        E,
        "Two Gateways on the same workload declare the same port and host.",
    ),
    Code(
        "IST0146",
        "ImageAutoWithoutInjectionWarning",
        W,
        "A Deployment's istio-proxy container has image: auto but no injection applies to it.",
    ),
    Code(
        "IST0149",
        "JwtClaimBasedRoutingWithoutRequestAuthN",
        E,
        "Routing on JWT claims at a gateway whose pods no RequestAuthentication selects.",
    ),
    Code(
        "IST0150",
        "ExternalNameServiceTypeInvalidPortName",
        W,
        "An ExternalName Service port without a protocol name: TCP traffic may not be forwarded.",
    ),
    Code(
        "IST0151",
        "EnvoyFilterUsesRelativeOperation",
        W,
        "A relative EnvoyFilter patch (INSERT_BEFORE/AFTER, REPLACE, REMOVE) without priority.",
    ),
    Code(
        "IST0152",
        "EnvoyFilterUsesReplaceOperationIncorrectly",
        E,
        "REPLACE outside HTTP_FILTER, NETWORK_FILTER and VIRTUAL_HOST.",
    ),
    Code(
        "IST0153",
        "EnvoyFilterUsesAddOperationIncorrectly",
        E,
        "ADD on ROUTE_CONFIGURATION or HTTP_ROUTE, which istiod ignores.",
    ),
    Code(
        "IST0154",
        "EnvoyFilterUsesRemoveOperationIncorrectly",
        E,
        "REMOVE on ROUTE_CONFIGURATION or HTTP_ROUTE, which istiod ignores.",
    ),
    Code(
        "IST0155",
        "EnvoyFilterUsesRelativeOperationWithProxyVersion",
        W,
        "A relative patch without priority on a filter an earlier patch limits to a proxyVersion.",
    ),
    Code(
        "IST0161",
        "InvalidGatewayCredential",
        E,
        "The Secret a Gateway's credentialName names has no usable certificate and key.",
    ),
    Code(
        "IST0162",
        "GatewayPortNotDefinedOnService",
        W,
        "A Gateway server port that no Service of the gateway pods exposes.",
    ),
    Code(
        "IST0165",
        "ReferencedInternalGateway",
        W,
        "A VirtualService names a Gateway generated from a Kubernetes Gateway.",
    ),
    Code(
        "IST0173",
        "DestinationRuleSubsetNotSelectPods",
        E,
        "No pod carries a DestinationRule subset's labels: requests routed to it get 503 UH.",
    ),
    Code(
        "IST0174",
        "UnknownDestinationRuleHost",
        W,
        "A DestinationRule's host matches no service or ServiceEntry.",
    ),
    Code(
        "IST0177",
        "ConflictingServiceEntryProtocol",
        W,
        "ServiceEntries give one host and port different protocols.",
    ),
)

del E, W, I
