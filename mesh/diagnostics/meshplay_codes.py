"""meshplay's own ``MPY`` codes, for what Istio has no code for (part of
:data:`mesh.diagnostics.CATALOG`): MPY1xxx document structure, MPY2xxx fields not modelled,
MPY3xxx cross-resource checks, MPY4xxx lesson and app files, MPY5xxx runners, MPY6xxx exercises.
"""

from __future__ import annotations

from mesh.diagnostics.code import Code, Level

__all__ = ["MESHPLAY_CODES"]

E, W, I = Level.ERROR, Level.WARNING, Level.INFO  # noqa: E741 - short level aliases for the table

MESHPLAY_CODES: tuple[Code, ...] = (
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
