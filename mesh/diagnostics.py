"""Diagnostics: one catalog of codes, the Diagnostic value, and its rendering.

Every problem meshplay finds in user input is a :class:`Diagnostic` rendered as
``file:line:col: level[CODE] Kind ns/name: message``, followed by the field path and a hint.
Codes reuse Istio's ``IST`` numbers only where the meaning is exactly the one ``istioctl analyze``
gives them; everything else uses meshplay's own families:

* ``MPY1xxx`` YAML and document structure (syntax, kinds, metadata, duplicates);
* ``MPY2xxx`` fields meshplay accepts but does not model, or that have no effect on the mesh;
* ``MPY3xxx`` cross-resource analysis that Istio has no code for;
* ``MPY4xxx`` lesson and app files (lesson.yaml, behavior.yaml);
* ``MPY5xxx`` runners: what a real data plane said about the generated configuration.

This module imports only the standard library.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CATALOG",
    "Code",
    "Diagnostic",
    "DiagnosticError",
    "Level",
    "did_you_mean",
    "format_path",
    "render",
]


class Level(IntEnum):
    """Severity, ordered as istioctl orders them (``--failure-threshold`` compares these)."""

    INFO = 0
    WARNING = 1
    ERROR = 2

    @property
    def label(self) -> str:
        """Lower-case name as printed in a diagnostic line."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Code:
    """A catalog entry: the code, its name, default level and what it means."""

    code: str
    name: str
    level: Level
    description: str


def _codes(*entries: Code) -> dict[str, Code]:
    table: dict[str, Code] = {}
    for entry in entries:
        if entry.code in table:  # pragma: no cover - guarded by a test
            raise ValueError(f"duplicate diagnostic code {entry.code}")
        table[entry.code] = entry
    return table


E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - short level aliases for the table

CATALOG: dict[str, Code] = _codes(
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
    # --- MPY1xxx: YAML and document structure ------------------------------------------------------
    Code("MPY1001", "YAMLSyntaxError", E, "The file is not valid YAML."),
    Code(
        "MPY1002",
        "NotAResource",
        E,
        "A YAML document is not a mapping with apiVersion, kind and metadata.",
    ),
    Code("MPY1003", "UnknownKind", E, "The kind (or its apiVersion) is not one meshplay loads."),
    Code(
        "MPY1004",
        "DuplicateResource",
        E,
        "The same Kind namespace/name is defined twice; kubectl apply would keep the last one.",
    ),
    Code("MPY1005", "EmptyInput", W, "A file or document set contains no resources."),
    Code(
        "MPY1006",
        "UnreadableFile",
        E,
        "The file cannot be read as UTF-8 text (binary junk, permissions, missing).",
    ),
    Code("MPY1007", "InvalidName", E, "metadata.name or namespace is not a valid DNS-1123 name."),
    Code("MPY1008", "DuplicateKey", E, "A mapping repeats a key; YAML keeps only the last."),
    Code(
        "MPY1009",
        "DeprecatedApiVersion",
        I,
        "The apiVersion is accepted but older than the current one.",
    ),
    Code(
        "MPY1010",
        "KubernetesSchemaError",
        E,
        "A Kubernetes manifest has an unknown field, a wrong type or a missing required field.",
    ),
    Code(
        "MPY1011",
        "InputTooComplex",
        E,
        "A document nests or aliases too deeply (YAML bomb protection).",
    ),
    Code(
        "MPY1101",
        "EnvoyRouteConfigInvalid",
        E,
        "An Envoy route configuration (or route-check test file) that Envoy itself would reject: "
        "duplicate domains, an RE2 pattern RE2 refuses, a malformed header formatter, a bad enum "
        "value or a test that breaks router_check_tool's schema.",
    ),
    # --- MPY2xxx: valid but not modelled / no effect ------------------------------------------------
    Code(
        "MPY2001",
        "FieldNotModelled",
        W,
        "A valid Istio field that meshplay does not simulate or translate yet; it is ignored.",
    ),
    Code(
        "MPY2004",
        "KindHasNoMeshEffect",
        I,
        "A valid Kubernetes kind that does not change mesh behaviour (ConfigMap, PVC, Role...); "
        "it is ignored by sim and local and applied as-is by kube.",
    ),
    Code(
        "MPY2005",
        "KindNotModelled",
        W,
        "A valid Istio or Kubernetes kind that affects the mesh but that meshplay does not model "
        "yet (StatefulSet, Telemetry, WorkloadEntry, Gateway API...); it is ignored by sim and local.",
    ),
    Code(
        "MPY2002",
        "FieldHasNoMeshEffect",
        I,
        "A valid Kubernetes field that does not change mesh behaviour; it is ignored.",
    ),
    Code(
        "MPY2003",
        "EnvoyFilterPatchNotModelled",
        W,
        "An EnvoyFilter patch other than the documented local-rate-limit form: not applied.",
    ),
    Code(
        "MPY2006",
        "AuthorizationPolicyCustomNotModelled",
        W,
        "An AuthorizationPolicy with action CUSTOM (an external authorizer): no filter is "
        "installed on sim and local, so it denies nothing there.",
    ),
    Code(
        "MPY2101",
        "EnvoyRouteFieldNotModelled",
        E,
        "An Envoy route configuration field (or regex construct, or header formatter) that Envoy "
        "accepts but meshplay's route matcher does not model: its answers would not be Envoy's.",
    ),
    # --- MPY3xxx: cross-resource checks without an Istio code -------------------------------------
    Code(
        "MPY3001",
        "DestinationRuleTLSConflictsWithPeerAuthentication",
        E,
        "A DestinationRule disables TLS (or uses SIMPLE) towards workloads whose "
        "PeerAuthentication is STRICT: every request fails (503 UC/UF).",
    ),
    Code(
        "MPY3002",
        "ServiceSelectsNoPods",
        W,
        "A Service's selector matches no Deployment's pods; requests to it get 503 UH.",
    ),
    Code("MPY3003", "RouteWeightsZero", E, "All destinations of a route have weight 0."),
    Code(
        "MPY3004",
        "ServiceAccountNotFound",
        W,
        "A Deployment runs as a ServiceAccount that is not defined.",
    ),
    Code(
        "MPY3006",
        "DestinationRuleSubsetHasNoEndpoints",
        W,
        "A subset's labels exist, but on no pod behind the rule's Service: requests routed to it "
        "get 503 UH.",
    ),
    Code(
        "MPY3007",
        "SidecarEgressHostNotFound",
        W,
        "A Sidecar egress host matches no service of the namespace it names; nothing is imported.",
    ),
    Code(
        "MPY3005",
        "AllowPolicyWithoutRules",
        W,
        "An ALLOW AuthorizationPolicy without rules matches nothing: it denies every request to "
        "the workloads it selects.",
    ),
    Code(
        "MPY3020",
        "GatewayCredentialUnusable",
        E,
        "A gateway credential Secret Envoy cannot use (a key missing, PEM that does not parse, a "
        "private key that is not the certificate's, no CA for MUTUAL): that TLS server's chain "
        "is not ready and every handshake on it fails.",
    ),
    # --- MPY4xxx: lesson and app files ------------------------------------------------------------
    Code(
        "MPY4001",
        "LessonSchemaError",
        E,
        "lesson.yaml or behavior.yaml has an unknown field, a wrong type or a missing field.",
    ),
    Code("MPY4002", "LessonFileNotFound", E, "A file a lesson refers to does not exist."),
    Code(
        "MPY4003",
        "LessonReferenceNotFound",
        E,
        "A lesson names a service, workload, subset, edge or resource that does not exist.",
    ),
    Code(
        "MPY4004",
        "InvalidExpectation",
        E,
        "An expectation has no bound, contradictory bounds or an unknown metric.",
    ),
    Code(
        "MPY4005",
        "AppNotRunnable",
        E,
        "A pod the local runner cannot run: its container names a service package that does "
        "not exist, or it has no code and its Service has no behaviour declared.",
    ),
    # --- MPY5xxx: runners (what a real data plane said about the generated config) -------------
    Code(
        "MPY5001",
        "EnvoyRejectedConfig",
        E,
        "A running Envoy rejected (NACKed) a configuration update; its own message and the "
        "resource are shown, and the previous configuration keeps serving.",
    ),
    # --- MPY6xxx: exercises ------------------------------------------------------------------
    Code(
        "MPY6001",
        "ExerciseSchema",
        E,
        "exercise.yaml has an unknown field, a wrong type, a missing field or an unknown phase.",
    ),
    Code(
        "MPY6002",
        "LearningPathInvalid",
        E,
        "path.yaml names a lesson or exercise that does not exist, places one twice, or has a "
        "wrong field.",
    ),
)

del E, W, I


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding, with where it is and what to do about it."""

    code: str
    message: str
    file: str = ""
    line: int = 0
    column: int = 0
    resource: str = ""
    path: str = ""
    hint: str = ""
    level: Level | None = None

    @property
    def severity(self) -> Level:
        """The level: explicit, or the catalog default of the code."""
        if self.level is not None:
            return self.level
        return CATALOG[self.code].level

    @property
    def location(self) -> str:
        """``file:line:col`` (or as much of it as is known)."""
        if not self.file:
            return ""
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        """Order by file, line, column, code, message."""
        return (self.file, self.line, self.column, self.code, self.message)

    def headline(self) -> str:
        """The first line: ``file:line:col: level[CODE] Kind ns/name: message``."""
        parts = []
        if self.location:
            parts.append(f"{self.location}:")
        parts.append(f"{self.severity.label}[{self.code}]")
        if self.resource:
            parts.append(f"{self.resource}:")
        parts.append(self.message)
        return " ".join(parts)

    def render(self) -> str:
        """Headline plus ``at <field path>`` and ``hint:`` lines."""
        lines = [self.headline()]
        if self.path:
            lines.append(f"    at {self.path}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly dict (``meshplay analyze -o json``)."""
        return {
            "code": self.code,
            "name": CATALOG[self.code].name,
            "level": self.severity.name.capitalize(),
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "resource": self.resource,
            "path": self.path,
            "hint": self.hint,
        }


class DiagnosticError(ValueError):
    """Raised once with every error found, after collecting them all."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))
        super().__init__(render(self.diagnostics))


def render(diagnostics: Iterable[Diagnostic]) -> str:
    """Render diagnostics sorted by file and line, one block each."""
    return "\n".join(d.render() for d in sorted(diagnostics, key=Diagnostic.sort_key))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``did you mean "x"?`` for the closest candidate, or an empty string."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in options}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f'did you mean "{close[0]}"?' if close else ""


_PLAIN_KEY = re.compile(r"^[A-Za-z_@][A-Za-z0-9_-]*$")


def format_path(path: Sequence[str | int]) -> str:
    """``("spec", "http", 0, "route")`` -> ``spec.http[0].route``; a key with dots or slashes
    (an annotation or label name) is bracketed: ``metadata.annotations["sidecar.istio.io/inject"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out
