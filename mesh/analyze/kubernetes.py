"""Checks of Kubernetes metadata Istio reads: annotations and namespace injection labels
(istioctl's ``annotations.K8sAnalyzer`` and ``injection.Analyzer``).

* IST0108: an annotation with an ``*istio.io/`` prefix that Istio does not define.
* IST0135: a deprecated Istio annotation (``sidecar.istio.io/inject`` is replaced by the label
  of the same name).
* IST0107: an Istio annotation on a kind it does not apply to (a pod annotation on the
  Deployment's own metadata instead of its pod template, for example).
* IST0125: a pod annotation whose value the sidecar injector rejects.
* IST0102: a namespace without ``istio-injection`` or ``istio.io/rev`` label (Info).
* IST0123: a namespace with several injection labels.

Annotations are checked on Namespaces, Services, Deployments and on the pods Deployments create
(their pod template).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator, Mapping, Sequence

from mesh.analyze.annotation_table import ALWAYS_IGNORED, ANNOTATIONS
from mesh.analyze.common import Path, diag, go_list, go_quote, of_kind
from mesh.diagnostics import Diagnostic, did_you_mean
from mesh.model import Deployment, Namespace, Resource, Service
from mesh.topology import Topology

__all__ = ["check_annotations", "check_namespaces"]

INJECT = "sidecar.istio.io/inject"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
DATAPLANE_LABEL = "istio.io/dataplane-mode"


def _is_istio_annotation(name: str) -> bool:
    return name == "kubernetes.io/ingress.class" or name.split("/", maxsplit=1)[0].endswith(
        "istio.io"
    )


def _go_parse_uint(value: str, bits: int) -> str:
    """The error text of Go's ``strconv.ParseUint`` (empty when it parses)."""
    if not value.isdigit():
        return f"strconv.ParseUint: parsing {go_quote(value)}: invalid syntax"
    if int(value) >= 1 << bits:
        return f"strconv.ParseUint: parsing {go_quote(value)}: value out of range"
    return ""


def _uint32(value: str) -> str:
    return _go_parse_uint(value, 32)


def _bool(value: str) -> str:
    if value in {"1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"}:
        return ""
    return f"strconv.ParseBool: parsing {go_quote(value)}: invalid syntax"


def _interception_mode(value: str) -> str:
    if value in {"REDIRECT", "TPROXY", "NONE"}:
        return ""
    return f"interceptionMode invalid, use REDIRECT,TPROXY,NONE: {value}"


def _port(value: str) -> str:
    problem = _go_parse_uint(value.strip(), 16)
    return f"failed parsing port '{value}': {problem}" if problem else ""


def _status_port(value: str) -> str:
    problem = _port(value)
    return f"excludeInboundPorts invalid: {problem}" if problem else ""


def _port_list(parameter: str, star_ok: bool = False) -> Callable[[str], str]:
    def check(value: str) -> str:
        if star_ok and value == "*":
            return ""
        for part in value.strip().split(",") if value.strip() else []:
            problem = _port(part)
            if problem:
                return f"{parameter} invalid: failed parsing port '{part}': {problem}"
        return ""

    return check


def _cidr_list(parameter: str, star_ok: bool = False) -> Callable[[str], str]:
    def check(value: str) -> str:
        if star_ok and value == "*":
            return ""
        for cidr in value.split(",") if value else []:
            if "/" not in cidr:
                problem = f"netip.ParsePrefix({go_quote(cidr)}): no '/'"
            else:
                try:
                    ipaddress.ip_network(cidr, strict=False)
                    continue
                except ValueError:
                    problem = f"netip.ParsePrefix({go_quote(cidr)}): invalid prefix"
            return f"{parameter} invalid: failed parsing cidr '{cidr}': {problem}"
        return ""

    return check


_QUANTITY = re.compile(
    r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def _quantity(value: str) -> str:
    if _QUANTITY.match(value):
        return ""
    return "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"


VALIDATORS: dict[str, Callable[[str], str]] = {
    "sidecar.istio.io/interceptionMode": _interception_mode,
    "status.sidecar.istio.io/port": _status_port,
    "readiness.status.sidecar.istio.io/initialDelaySeconds": _uint32,
    "readiness.status.sidecar.istio.io/periodSeconds": _uint32,
    "readiness.status.sidecar.istio.io/failureThreshold": _uint32,
    "traffic.sidecar.istio.io/includeOutboundIPRanges": _cidr_list("includeIPRanges", star_ok=True),
    "traffic.sidecar.istio.io/excludeOutboundIPRanges": _cidr_list("excludeIPRanges"),
    "traffic.sidecar.istio.io/includeInboundPorts": _port_list("includeInboundPorts", star_ok=True),
    "traffic.sidecar.istio.io/excludeInboundPorts": _port_list("excludeInboundPorts"),
    "traffic.sidecar.istio.io/excludeOutboundPorts": _port_list("excludeOutboundPorts"),
    "prometheus.istio.io/merge-metrics": _bool,
    "sidecar.istio.io/proxyCPU": _quantity,
    "sidecar.istio.io/proxyMemory": _quantity,
    "sidecar.istio.io/proxyCPULimit": _quantity,
    "sidecar.istio.io/proxyMemoryLimit": _quantity,
}
"""The injector's value checks istioctl runs (``pkg/kube/inject/validate.go``), with Go's error
texts; the CIDR parse details are shortened."""


def _check(
    r: Resource,
    kind: str,
    annotations: Mapping[str, str],
    labels: Mapping[str, str],
    base: Path,
) -> Iterator[Diagnostic]:
    for name, value in annotations.items():
        if not _is_istio_annotation(name) or name in ALWAYS_IGNORED:
            continue
        path: Path = (*base, name)
        info = ANNOTATIONS.get(name)
        if info is None:
            yield diag("IST0108", r, path, f"Unknown annotation: {name}",
                       did_you_mean(name, ANNOTATIONS) or "Istio ignores it")  # fmt: skip
            continue
        if info.deprecated and not (name == INJECT and INJECT in labels):
            extra = f' in favor of the "{INJECT}" label' if name == INJECT else ""
            yield diag("IST0135", r, path,
                       f"Annotation {go_quote(name)} has been deprecated{extra} and may not work in "
                       "future Istio versions.",
                       f'use the pod label "{INJECT}" instead' if name == INJECT else "")  # fmt: skip
        if "Any" in info.resources:
            continue
        if kind not in info.resources:
            hint = (
                "put it on the pod template (spec.template.metadata.annotations)"
                if (kind == "Deployment" and "Pod" in info.resources)
                else ""
            )
            yield diag("IST0107", r, path,
                       f"Misplaced annotation: {name} can only be applied to "
                       f"{', '.join(info.resources)}", hint)  # fmt: skip
            continue
        validator = VALIDATORS.get(name)
        problem = validator(value) if validator is not None else ""
        if problem:
            yield diag("IST0125", r, path, f"Invalid annotation {name}: {problem}")


def check_annotations(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0107 / IST0108 / IST0125 / IST0135 on Namespaces, Services, Deployments and pods."""
    del topo
    for r in resources:
        meta = r.metadata
        if isinstance(r, Namespace | Service | Deployment):
            yield from _check(r, r.KIND, meta.annotations, meta.labels, ("metadata", "annotations"))
        if isinstance(r, Deployment):
            template = r.spec.template.metadata
            yield from _check(r, "Pod", template.annotations, template.labels,
                              ("spec", "template", "metadata", "annotations"))  # fmt: skip


def check_namespaces(resources: Sequence[Resource], topo: Topology) -> Iterator[Diagnostic]:
    """IST0123 several injection labels; IST0102 no injection label (Info)."""
    for ns in of_kind(resources, Namespace):
        if ns.name == topo.config.root_namespace:
            continue
        labels = ns.metadata.labels
        injection = labels.get(INJECTION_LABEL)
        found = [f"{INJECTION_LABEL}={injection}"] if injection is not None else []
        if injection is None or injection == "enabled":
            found += [f"{k}={labels[k]}" for k in (REVISION_LABEL, DATAPLANE_LABEL) if k in labels]
        if len(found) > 1:
            yield diag("IST0123", ns, ("metadata", "labels"),
                       f"The namespace has more than one type of injection labels {go_list(found)}, "
                       "which may lead to undefined behavior. Make sure only one injection label "
                       "exists.", "keep either istio-injection or istio.io/rev")  # fmt: skip
        if labels.get(DATAPLANE_LABEL) == "ambient":
            continue
        if not injection and REVISION_LABEL not in labels:
            yield diag("IST0102", ns, ("metadata", "name"),
                       "The namespace is not enabled for Istio injection. Run 'kubectl label "
                       f"namespace {ns.name} istio-injection=enabled' to enable it, or 'kubectl label "
                       f"namespace {ns.name} istio-injection=disabled' to explicitly mark it as not "
                       "needing injection.")  # fmt: skip
