"""The app model: Kubernetes manifests plus one behaviour declaration (``behavior.yaml``).

The manifests say *what runs* (Deployments, Services, ServiceAccounts); every runner reads them.
The behaviour declaration says *what each endpoint does*: how long the app itself works on a
request (a lognormal fitted to a median and a p99), how often it fails on its own, how many
requests one replica serves at once, and which downstream calls it makes, in order or in
parallel. The simulator executes this declaration; a test checks that the real services in
``services/`` make exactly the declared calls.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.diagnostics import Diagnostic, DiagnosticError, Level
from mesh.model.common import Duration, FrozenMap, Resource, SourceMap
from mesh.source.decode import MISSING, Decoder
from mesh.source.load import load_paths
from mesh.source.yaml_nodes import parse_documents

__all__ = [
    "App",
    "AppBehavior",
    "Call",
    "CallStep",
    "EndpointBehavior",
    "LatencyModel",
    "NetworkBehavior",
    "Parallel",
    "ServiceBehavior",
    "VersionBehavior",
    "load_app",
    "load_behavior",
]

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyModel:
    """A lognormal latency given by its median and 99th percentile."""

    median: Duration
    p99: Duration

    @property
    def mu(self) -> float:
        """log of the median, in seconds."""
        return math.log(max(self.median.seconds, 1e-9))

    @property
    def sigma(self) -> float:
        """Shape fitted so that the 99th percentile lands on ``p99``."""
        ratio = max(self.p99.seconds, self.median.seconds) / max(self.median.seconds, 1e-9)
        return math.log(ratio) / _Z99 if ratio > 1 else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One downstream request: ``METHOD SERVICE PATH``; ``once`` = only a replica's first request."""

    call: str
    once: bool = False

    @property
    def method(self) -> str:
        """HTTP method."""
        return self.call.split()[0]

    @property
    def service(self) -> str:
        """Destination Kubernetes Service name."""
        return self.call.split()[1]

    @property
    def path(self) -> str:
        """Request path; ``{param}`` segments are filled from the incoming request (see
        :meth:`path_for`)."""
        return self.call.split()[2]

    def path_for(self, params: dict[str, str]) -> str:
        """The path with ``{param}`` segments replaced by the incoming request's values."""
        return _PARAM.sub(lambda m: params.get(m.group(0)[1:-1], m.group(0)), self.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class Parallel:
    """Downstream calls made concurrently; the step ends when all have answered."""

    parallel: tuple[Call, ...]


CallStep = Call | Parallel


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointBehavior:
    """What the app does for ``route`` (``METHOD /path/{param}``)."""

    route: str
    service_time: LatencyModel | None = None
    error_rate: float = 0.0
    calls: tuple[Call | Parallel, ...] = ()

    @property
    def method(self) -> str:
        """HTTP method of the route."""
        return self.route.split()[0]

    @property
    def path_template(self) -> str:
        """Path template of the route."""
        return self.route.split()[1]

    def path_params(self, path: str) -> dict[str, str]:
        """``{param}`` values of a concrete path (``/products/7`` -> ``{"id": "7"}``)."""
        names = [m.group(0)[1:-1] for m in _PARAM.finditer(self.path_template)]
        found = _template_regex(self.path_template).match(path.split("?", 1)[0])
        return dict(zip(names, found.groups(), strict=True)) if found and names else {}

    def matches(self, method: str, path: str) -> bool:
        """Whether a concrete request ``method path`` is served by this endpoint."""
        if method.upper() != self.method:
            return False
        return _template_regex(self.path_template).match(path.split("?", 1)[0]) is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionBehavior:
    """Per-version overrides: endpoints listed here replace the same routes of the base."""

    endpoints: tuple[EndpointBehavior, ...] = ()
    concurrency: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceBehavior:
    """A service's endpoints, concurrency per replica and per-version overrides.

    ``concurrency`` is how many requests' own work (``serviceTime``) one replica performs at
    once; further requests queue for a slot. Waiting on downstream calls does not hold a slot
    (the services are async: one uvicorn worker interleaves requests while they wait), so a
    single-worker async service is ``concurrency: 1``.
    """

    name: str
    port: int = 8080
    concurrency: int = 16
    endpoints: tuple[EndpointBehavior, ...] = ()
    versions: FrozenMap[str, VersionBehavior] = field(default_factory=FrozenMap)

    def endpoint(self, method: str, path: str, version: str = "") -> EndpointBehavior | None:
        """The endpoint serving a request, with the version's override when it has one."""
        override = self.versions.get(version)
        if override is not None:
            for e in override.endpoints:
                if e.matches(method, path):
                    return e
        return next((e for e in self.endpoints if e.matches(method, path)), None)

    def concurrency_of(self, version: str) -> int:
        """Worker slots of one replica of ``version``."""
        override = self.versions.get(version)
        if override is not None and override.concurrency is not None:
            return override.concurrency
        return self.concurrency


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkBehavior:
    """Latency of one network hop (app <-> sidecar, sidecar <-> sidecar)."""

    hop_latency: LatencyModel = field(
        default_factory=lambda: LatencyModel(median=Duration(0.0002), p99=Duration(0.001))
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AppBehaviorSpec:
    """spec of an AppBehavior."""

    network: NetworkBehavior = field(default_factory=NetworkBehavior)
    services: tuple[ServiceBehavior, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AppBehavior:
    """The decoded behaviour declaration."""

    name: str
    namespace: str
    network: NetworkBehavior
    services: FrozenMap[str, ServiceBehavior]

    def service(self, name: str) -> ServiceBehavior | None:
        """Behaviour of a service by Kubernetes Service name."""
        return self.services.get(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class App:
    """An app: its folder, manifests and behaviour."""

    name: str
    path: Path
    resources: tuple[Resource, ...]
    behavior: AppBehavior


_PARAM = re.compile(r"\{[^/}]+\}")


@functools.cache
def _template_regex(template: str) -> re.Pattern[str]:
    """``/products/{id}`` -> ``^/products/([^/]+)$`` (compiled once per template)."""
    escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return re.compile("^" + _PARAM.sub("([^/]+)", escaped) + "$")


_CALL_RE = re.compile(
    r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) [a-z0-9]([-a-z0-9]*[a-z0-9])? /\S*$"
)
_ROUTE_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S*$")


def _normalize_calls(value: Any) -> Any:
    """Turn the ``- GET svc /path`` shorthand into ``{call: ...}`` mappings before decoding."""
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append({"call": item})
            elif isinstance(item, dict) and "parallel" in item:
                out.append({**item, "parallel": _normalize_calls(item["parallel"])})
            else:
                out.append(item)
        return out
    return value


def _normalize(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    services = spec.get("services")
    if not isinstance(services, list):
        return spec
    for svc in services:
        if not isinstance(svc, dict):
            continue
        blocks = [svc]
        versions = svc.get("versions")
        if isinstance(versions, dict):
            blocks.extend(v for v in versions.values() if isinstance(v, dict))
        for block in blocks:
            endpoints = block.get("endpoints")
            if isinstance(endpoints, list):
                for e in endpoints:
                    if isinstance(e, dict) and "calls" in e:
                        e["calls"] = _normalize_calls(e["calls"])
    return spec


def _check(behavior: AppBehaviorSpec, decoder: Decoder) -> None:
    names = {s.name for s in behavior.services}
    for i, svc in enumerate(behavior.services):
        base = ("spec", "services", i)
        blocks: list[tuple[tuple[str | int, ...], Sequence[EndpointBehavior]]] = [
            (base, svc.endpoints)
        ]
        blocks += [((*base, "versions", v), vb.endpoints) for v, vb in svc.versions.items()]
        for path, endpoints in blocks:
            for j, e in enumerate(endpoints):
                epath = (*path, "endpoints", j)
                if not _ROUTE_RE.match(e.route):
                    decoder.error(
                        (*epath, "route"),
                        f'route "{e.route}" is not "METHOD /path"',
                        'write e.g. "GET /products/{id}"',
                    )
                if not 0.0 <= e.error_rate <= 1.0:
                    decoder.error(
                        (*epath, "errorRate"), f"errorRate {e.error_rate} is not in [0, 1]"
                    )
                for k, step in enumerate(e.calls):
                    calls = step.parallel if isinstance(step, Parallel) else (step,)
                    for m, c in enumerate(calls):
                        cpath = (
                            (*epath, "calls", k)
                            if isinstance(step, Call)
                            else (*epath, "calls", k, "parallel", m)
                        )
                        if not _CALL_RE.match(c.call):
                            decoder.error(
                                cpath,
                                f'call "{c.call}" is not "METHOD SERVICE /path"',
                                'write e.g. "GET product /products/1"',
                            )
                        elif c.service not in names:
                            decoder.report(
                                "MPY4003",
                                cpath,
                                f'call to unknown service "{c.service}"',
                                f"declared services: {', '.join(sorted(names))}",
                            )


def load_behavior(path: Path) -> AppBehavior:
    """Load and check ``behavior.yaml``; raises DiagnosticError with every problem found."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticError(
            [Diagnostic("MPY4002", f"cannot read behaviour file: {exc}", file=file)]
        ) from exc
    docs, diagnostics = parse_documents(text, file)
    if not docs:
        diagnostics.append(
            Diagnostic("MPY4001", "empty behaviour file", file=file, line=1, column=1)
        )
        raise DiagnosticError(diagnostics)
    doc = docs[0]
    source = SourceMap(doc.origin, doc.positions)
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_meta = data.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name", path.parent.name))
    decoder = Decoder(source, f"AppBehavior {name}", "MPY4001")
    if data.get("kind") != "AppBehavior":
        decoder.error(("kind",), 'expected "kind: AppBehavior"')
    spec = decoder.dataclass(AppBehaviorSpec, _normalize(data.get("spec")), ("spec",))
    if spec is not MISSING:
        _check(spec, decoder)
    diagnostics.extend(decoder.diagnostics)
    if spec is MISSING or any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return AppBehavior(
        name=name,
        namespace=str(meta.get("namespace", "default")),
        network=spec.network,
        services=FrozenMap({s.name: s for s in spec.services}),
    )


def load_app(path: Path) -> App:
    """Load an app folder: ``kubernetes/`` manifests and ``behavior.yaml``."""
    behavior = load_behavior(path / "behavior.yaml")
    result = load_paths([path / "kubernetes"], default_namespace=behavior.namespace)
    if not result.ok:
        raise DiagnosticError(result.errors)
    return App(name=path.name, path=path, resources=result.resources, behavior=behavior)
