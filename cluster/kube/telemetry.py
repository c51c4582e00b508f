"""The mesh settings meshplay needs on a cluster: the JSON access log, tracing sampling.

Every RequestRecord field comes from an Envoy access-log line (:mod:`mesh.envoy.accesslog`). On
the ``local`` runner the translator writes each proxy's format with that pod's facts as literals;
istiod has one format per *provider* for the whole mesh, so meshplay declares two
``envoyFileAccessLog`` extension providers, generated from the same
:func:`mesh.envoy.accesslog.json_format`:

* ``meshplay-source`` for the client side (Telemetry ``match.mode: CLIENT``: sidecar outbound
  listeners and gateways, which istiod logs as clients) with ``reporter: source``;
* ``meshplay-destination`` for the server side (``SERVER``: sidecar inbound) with
  ``reporter: destination``.

The proxy's own workload and namespace are Envoy ``%ENVIRONMENT(...)%`` operators over the
variables Istio's injector sets (``ISTIO_META_WORKLOAD_NAME``, ``POD_NAMESPACE``); what no
operator knows (the pod's ``app``/``version`` labels, the caller's workload on the server side)
the runner adds when it reads a line, from the pod the line came from and from the client-side
line of the same ``x-request-id`` (:mod:`cluster.kube.records`). ``protocol`` (``%PROTOCOL%``,
empty for a TCP connection) tells HTTP lines from ``tcp_proxy`` lines.

A Telemetry resource in the root namespace (``istio-system``) selects the two providers; the
providers themselves live in the mesh config (``istioctl install -f`` the generated
IstioOperator, or ``meshplay cluster up``, which merges them into the ``istio`` ConfigMap).
"""

from __future__ import annotations

from typing import Any

import yaml

from mesh.envoy.accesslog import LogIdentity, json_format
from mesh.records import Reporter

__all__ = [
    "DESTINATION_PROVIDER",
    "ISTIO_NAMESPACE",
    "SOURCE_PROVIDER",
    "TELEMETRY_NAME",
    "TRACE_SAMPLING",
    "access_log_labels",
    "extension_providers",
    "istio_operator",
    "merge_mesh_config",
    "telemetry_resource",
    "unmerge_mesh_config",
]

ISTIO_NAMESPACE = "istio-system"
SOURCE_PROVIDER = "meshplay-source"
DESTINATION_PROVIDER = "meshplay-destination"
TELEMETRY_NAME = "meshplay-access-log"
TRACE_SAMPLING = 100.0
"""Percent of requests traced (Istio's default is 1 %; a lesson wants every request's trace)."""

POD_IDENTITY = LogIdentity(
    workload="%ENVIRONMENT(ISTIO_META_WORKLOAD_NAME)%",
    namespace="%ENVIRONMENT(POD_NAMESPACE)%",
    app="",
    version="",
    principal="",
)
"""The proxy's own facts as Envoy operators (app and version are added by the reader)."""


def access_log_labels(reporter: Reporter) -> dict[str, str]:
    """The JSON log format (``logFormat.labels``) of one provider."""
    labels = json_format(reporter, POD_IDENTITY)
    labels["protocol"] = "%PROTOCOL%"
    if reporter is Reporter.DESTINATION:
        labels.pop("destination_service", None)  # the reader knows the pod's Services
    return dict(sorted(labels.items()))


def extension_providers() -> list[dict[str, Any]]:
    """``meshConfig.extensionProviders`` entries of the two access-log providers."""
    return [
        {
            "name": name,
            "envoyFileAccessLog": {
                "path": "/dev/stdout",
                "logFormat": {"labels": access_log_labels(reporter)},
            },
        }
        for name, reporter in (
            (SOURCE_PROVIDER, Reporter.SOURCE),
            (DESTINATION_PROVIDER, Reporter.DESTINATION),
        )
    ]


def telemetry_resource() -> dict[str, Any]:
    """The mesh-wide Telemetry that turns the providers on (client side / server side)."""
    return {
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": TELEMETRY_NAME, "namespace": ISTIO_NAMESPACE},
        "spec": {
            "accessLogging": [
                {"match": {"mode": "CLIENT"}, "providers": [{"name": SOURCE_PROVIDER}]},
                {"match": {"mode": "SERVER"}, "providers": [{"name": DESTINATION_PROVIDER}]},
            ]
        },
    }


def istio_operator() -> dict[str, Any]:
    """An IstioOperator for ``istioctl install -f``: the default profile plus meshplay's
    providers and 100 % trace sampling."""
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": "meshplay", "namespace": ISTIO_NAMESPACE},
        "spec": {
            "profile": "default",
            "meshConfig": {
                "defaultConfig": {"tracing": {"sampling": TRACE_SAMPLING}},
                "extensionProviders": extension_providers(),
            },
        },
    }


def merge_mesh_config(mesh_yaml: str) -> str:
    """The ``mesh`` key of the ``istio`` ConfigMap with meshplay's providers added (replacing
    same-named ones) and trace sampling set; every other setting kept."""
    mesh = yaml.safe_load(mesh_yaml) or {}
    if not isinstance(mesh, dict):
        raise ValueError("the istio ConfigMap's mesh key is not a YAML mapping")
    ours = extension_providers()
    names = {p["name"] for p in ours}
    kept = [p for p in mesh.get("extensionProviders") or [] if p.get("name") not in names]
    mesh["extensionProviders"] = kept + ours
    default = mesh.setdefault("defaultConfig", {})
    default.setdefault("tracing", {})["sampling"] = TRACE_SAMPLING
    text: str = yaml.safe_dump(mesh, sort_keys=False, width=1000)
    return text


def unmerge_mesh_config(mesh_yaml: str) -> str:
    """The ``mesh`` key without meshplay's providers (what ``meshplay cluster down`` writes)."""
    mesh = yaml.safe_load(mesh_yaml) or {}
    names = {SOURCE_PROVIDER, DESTINATION_PROVIDER}
    providers = [p for p in mesh.get("extensionProviders") or [] if p.get("name") not in names]
    if providers:
        mesh["extensionProviders"] = providers
    else:
        mesh.pop("extensionProviders", None)
    text: str = yaml.safe_dump(mesh, sort_keys=False, width=1000)
    return text


def has_providers(mesh_yaml: str) -> bool:
    """Whether a mesh config declares both providers with today's formats."""
    mesh = yaml.safe_load(mesh_yaml) or {}
    found = {p.get("name"): p for p in mesh.get("extensionProviders") or [] if isinstance(p, dict)}
    return all(found.get(p["name"]) == p for p in extension_providers())
