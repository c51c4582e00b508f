"""The values of the app model (decoded from ``behavior.yaml`` by :mod:`mesh.app.load`)."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mesh.model.common import Duration, FrozenMap, Resource

__all__ = [
    "DEGRADED_HEADER",
    "TRACE_HEADERS",
    "App",
    "AppBehavior",
    "AppBehaviorSpec",
    "Call",
    "CallStep",
    "EndpointBehavior",
    "LatencyModel",
    "NetworkBehavior",
    "OnError",
    "Parallel",
    "ResponseSpec",
    "ServiceBehavior",
    "SessionHeader",
    "VersionBehavior",
]

_Z99 = 2.3263478740408408  # standard normal quantile at 0.99

TRACE_HEADERS = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
)
"""The headers Istio asks applications to copy from a request onto the calls made for it, so
that Envoy's spans of the two hops join one trace (Istio's "trace context propagation" list)."""

DEGRADED_HEADER = "x-app-degraded"
"""Default response header a degraded answer carries: the services whose calls failed."""


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


class OnError(StrEnum):
    """What the caller does when a call fails (a status >= 500, no connection, or its own
    timeout) after its own retries."""

    PROPAGATE = "propagate"
    """Answer the request with an error: ``errorStatus``, else the downstream's status (503 when
    no connection could be made, 504 when the app's own timeout fired). A 4xx is passed on too."""
    DEGRADE = "degrade"
    """Answer 200 anyway, without the part the call would have given (``degradeSize`` bytes
    less or more), marked with the service's ``degradedHeader``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """One downstream request ``METHOD SERVICE PATH`` and how the app makes it.

    ``timeout`` is the app's own deadline for one attempt (the whole exchange through its
    sidecar, mesh retries included: an app timeout of 3 s over a mesh ``perTryTimeout`` of 2 s
    with 2 retries gives up during the mesh's second try); ``retries`` are the app's own further
    attempts after a failed one (5xx, no connection, its own timeout), each under the mesh's
    policy again. ``forwardHeaders``/``propagateTraceHeaders`` override the service's for this
    call (None: the service's).
    """

    call: str
    once: bool = False
    timeout: Duration | None = None
    retries: int = 0
    on_error: OnError = OnError.PROPAGATE
    error_status: int | None = None
    degrade_size: int = 0
    forward_headers: tuple[str, ...] | None = None
    propagate_trace_headers: bool | None = None

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
class ResponseSpec:
    """What the endpoint answers when all went well: status and body size in bytes (None:
    not declared; the simulator then logs 0 bytes and the behaviour server sends no body)."""

    status: int = 200
    size: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointBehavior:
    """What the app does for ``route`` (``METHOD /path/{param}``)."""

    route: str
    service_time: LatencyModel | None = None
    error_rate: float = 0.0
    response: ResponseSpec = field(default_factory=ResponseSpec)
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
        found = template_regex(self.path_template).match(path.split("?", 1)[0])
        return dict(zip(names, found.groups(), strict=True)) if found and names else {}

    def matches(self, method: str, path: str) -> bool:
        """Whether a concrete request ``method path`` is served by this endpoint."""
        if method.upper() != self.method:
            return False
        return template_regex(self.path_template).match(path.split("?", 1)[0]) is not None

    def all_calls(self) -> tuple[Call, ...]:
        """Every declared call, parallel steps flattened, in declaration order."""
        out: list[Call] = []
        for step in self.calls:
            out.extend(step.parallel if isinstance(step, Parallel) else (step,))
        return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionHeader:
    """A header the app derives from a session: the value of cookie ``cookie`` of the incoming
    request is sent as ``header`` on its downstream calls (Bookinfo's productpage turns its
    login session into ``end-user: jason``)."""

    cookie: str
    header: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionBehavior:
    """Per-version overrides: endpoints listed here replace the same routes of the base."""

    endpoints: tuple[EndpointBehavior, ...] = ()
    concurrency: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceBehavior:
    """A service's endpoints, concurrency per replica, headers and per-version overrides.

    ``concurrency`` is how many requests' own work (``serviceTime``) one replica performs at
    once; further requests queue for a slot. Waiting on downstream calls does not hold a slot
    (the services are async: one uvicorn worker interleaves requests while they wait), so a
    single-worker async service is ``concurrency: 1``.

    ``forwardHeaders`` are request headers copied onto every downstream call (beside the trace
    headers, which are copied unless ``propagateTraceHeaders: false``); ``sessions`` derive
    headers from cookies; ``degradedHeader`` marks degraded answers.
    """

    name: str
    port: int = 8080
    concurrency: int = 16
    forward_headers: tuple[str, ...] = ()
    propagate_trace_headers: bool = True
    sessions: tuple[SessionHeader, ...] = ()
    degraded_header: str = DEGRADED_HEADER
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

    def endpoints_of(self, version: str) -> tuple[EndpointBehavior, ...]:
        """The endpoints a replica of ``version`` serves: the version's, then the base routes
        it does not override."""
        override = self.versions.get(version)
        if override is None:
            return self.endpoints
        routes = {e.route for e in override.endpoints}
        return (*override.endpoints, *(e for e in self.endpoints if e.route not in routes))

    def concurrency_of(self, version: str) -> int:
        """Worker slots of one replica of ``version``."""
        override = self.versions.get(version)
        if override is not None and override.concurrency is not None:
            return override.concurrency
        return self.concurrency

    def forwarded(self, call: Call) -> tuple[str, ...]:
        """Lower-case names of the request headers the app copies onto ``call``."""
        trace = (
            call.propagate_trace_headers
            if call.propagate_trace_headers is not None
            else self.propagate_trace_headers
        )
        own = call.forward_headers if call.forward_headers is not None else self.forward_headers
        names = (*(TRACE_HEADERS if trace else ()), *(h.lower() for h in own))
        return tuple(dict.fromkeys(names))


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
def template_regex(template: str) -> re.Pattern[str]:
    """``/products/{id}`` -> ``^/products/([^/]+)$`` (compiled once per template)."""
    escaped = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
    return re.compile("^" + _PARAM.sub("([^/]+)", escaped) + "$")
