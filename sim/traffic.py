"""Load generators: open loop (Poisson arrivals at a rate) and closed loop (N concurrent clients).

Open loop is what a steady stream of users looks like: arrivals do not wait for answers, so a
slow service builds queues. Closed loop is ``fortio load -c N``: each of N clients sends its next
request when the previous one has answered, so at most N requests are in flight — what trips a
circuit breaker with small limits. Either ends after ``duration_s`` of simulated time or
``count`` requests, whichever comes first.

Header values may name a user's token, ``${jwt:EMAIL}``: the simulated user service mints it
(:class:`sim.tokens.UserTokens`).

Where requests enter: ``outside`` = a client outside the mesh talking straight to a pod of the
Service (kube-proxy picks one at random; only the server sidecar reports); ``ingress`` = through
the ingress gateway: the gateway Service's port (80 unless ``port`` says otherwise) leads to the
gateway pod's listener on the target port (80 -> 8080, as kube-proxy maps it), with Host ``to``
(a Service name or any host a Gateway serves, e.g. ``bookinfo.example.com``; a ``host`` header
of the request wins), in TLS with that host as SNI when ``scheme: https`` (port 443 then);
any workload (Deployment name or ``app`` label) = from
inside that workload's pod, through its sidecar. The target is a Service (the app dials its name)
or an ``IP:port``.

``protocol: tcp`` traffic opens one TCP connection per "request" (:mod:`sim.tcp`), to a Service
or to an ``IP:port``. Requests and connections enter the data plane through
:class:`sim.dataplane.DataPlane`, which the driver wires into the world.
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any

import simpy

from mesh.lesson import RequestSpec, TrafficSpec, parse_address
from mesh.model import Secret
from mesh.runner import RunnerError
from mesh.security.credentials import client_pair, client_trust
from mesh.topology import INGRESS_GATEWAY, MeshService
from sim.dataplane import wire
from sim.messages import Request, TlsHello, Trace
from sim.pods import PodRuntime
from sim.tcp import Connection
from sim.world import World

__all__ = ["TrafficDriver", "drain", "run_until_quiet"]

Proc = Generator[Any, Any, Any]


class TrafficDriver:
    """Drives one TrafficSpec into a World."""

    def __init__(self, world: World, spec: TrafficSpec) -> None:
        self.world = world
        self.plane = wire(world)
        self.spec = spec
        self.sent = 0
        self.completed = 0
        self.last_time = 0.0
        self.generating = True
        self.mix = spec.requests or (RequestSpec(),)
        self._weights = list(itertools.accumulate(max(0.0, r.weight) for r in self.mix))
        namespace = world.behavior.namespace
        address = parse_address(spec.to)
        service = world.service_by_name(spec.to, namespace) if address is None else None
        if service is None and address is None and spec.from_ != "ingress":
            raise RunnerError(f'traffic target "{spec.to}" is not a Service of the app')
        self.address = address
        self.service: MeshService = service or _EXTERNAL
        self.clients: list[PodRuntime] = []
        self.listener_port = 0
        """Where ingress traffic lands on the gateway pod (the target port of its Service port)."""
        source = spec.from_
        if address is not None:
            self.port = address[1]
            self.clients = self._workload_clients(source)
        elif source == "ingress":
            self.clients = [p for p in world.pods.values() if p.app == INGRESS_GATEWAY]
            self.port = spec.port or (443 if spec.scheme == "https" else 80)
            self.listener_port = self._gateway_target_port(self.port)
        elif source == "outside":
            self.port = spec.port or self.service.ports[0].port
        else:
            self.clients = self._workload_clients(source)
            self.port = spec.port or self.service.ports[0].port
        if source != "outside" and not self.clients:
            raise RunnerError(f'traffic source "{source}" has no pods')
        self._trust, self._client_cert = _tls_client(world, spec)
        self._next_client = 0
        self.end_time = spec.duration_s if spec.duration_s is not None else float("inf")
        self.limit = spec.count if spec.count is not None else None
        if self.end_time == float("inf") and self.limit is None:
            self.end_time = 10.0

    def _gateway_target_port(self, port: int) -> int:
        """The gateway pod's port behind the gateway Service's ``port`` (kube-proxy's mapping);
        a port the Service does not expose is refused, as a LoadBalancer would."""
        exposed: set[int] = set()
        for client in self.clients:
            for service in self.world.topology.services_of(client.pod):
                sp = service.port(port)
                if sp is not None:
                    return sp.target_port
                exposed.update(p.port for p in service.ports)
        raise RunnerError(
            f"the ingress gateway's Service has no port {port} "
            f"(it exposes {', '.join(str(p) for p in sorted(exposed)) or 'none'})"
        )

    def _workload_clients(self, source: str) -> list[PodRuntime]:
        return sorted(
            (p for p in self.world.pods.values() if source in (p.pod.workload, p.app)),
            key=lambda p: p.name,
        )

    def start(self) -> None:
        """Schedule the generator processes."""
        env = self.world.env
        if self.spec.concurrency:
            for _ in range(self.spec.concurrency):
                env.process(self._closed_client())
            env.process(self._closed_watch())
        else:
            env.process(self._open())

    @property
    def finished(self) -> bool:
        """No more requests will be sent and every sent one has been answered."""
        return not self.generating and self.completed >= self.sent

    def _more(self) -> bool:
        if self.world.env.now >= self.end_time:
            return False
        return self.limit is None or self.sent < self.limit

    def _open(self) -> Proc:
        env = self.world.env
        rng = self.world.rng
        rate = self.spec.rate_rps or 10.0
        while True:
            yield env.timeout(rng.expovariate(rate))
            if not self._more():
                break
            self.sent += 1
            env.process(self._one())
        self.generating = False

    def _closed_client(self) -> Proc:
        while self._more():
            self.sent += 1
            yield from self._one()

    def _closed_watch(self) -> Proc:
        env = self.world.env
        while self._more():
            step = 0.05 if self.end_time == float("inf") else max(0.0, self.end_time - env.now)
            yield env.timeout(max(step, 1e-3))
        self.generating = False

    def request(self, spec: RequestSpec, trace: Trace | None = None) -> Request:
        """A new top-level request of the mix entry ``spec``."""
        request_id, trace_id = self.world.new_ids()
        fill = self.world.tokens.fill
        headers = {k.lower(): fill(v) for k, v in spec.headers_for(request_id).items()}
        authority = headers.pop("host", "") or headers.pop(":authority", "")
        if not authority:
            authority = (
                self.spec.to if self.spec.from_ == "ingress" else f"{self.spec.to}:{self.port}"
            )
        headers["x-request-id"] = request_id
        hello = None
        if self.spec.scheme == "https":  # TLS to the gateway, SNI = the host of `to`
            sni = self.spec.to.rsplit(":", 1)[0]
            hello = TlsHello(sni, trusted_ca=self._trust, client_cert=self._client_cert)
        return Request(
            spec.method.upper(),
            spec.path,
            authority,
            self.port,
            headers,
            request_id,
            trace_id,
            trace,
            address=self.address[0] if self.address is not None else self.service.hostname,
            tls=hello,
        )

    def _pick(self) -> RequestSpec:
        if len(self.mix) == 1:
            return self.mix[0]
        r = self.world.rng.random() * self._weights[-1]
        for spec, bound in zip(self.mix, self._weights, strict=True):
            if r < bound:
                return spec
        return self.mix[-1]

    def send(self, req: Request) -> Proc:
        """Deliver one request from the configured source: the generator to run (it returns
        the Response), handed back rather than wrapped, one level less for every event."""
        if self.spec.from_ == "outside":
            return self.plane.send(self.world, None, req, self.service)
        client = self.clients[self._next_client % len(self.clients)]
        self._next_client += 1
        if self.listener_port:  # ingress: the connection arrives at the gateway pod itself
            req.address, req.port = client.pod.address, self.listener_port
        return self.plane.send(self.world, client, req, self.service)

    def connection(self, trace: Trace | None = None) -> Connection:
        """A new TCP connection of this traffic (``protocol: tcp``)."""
        spec = self.spec
        if self.address is not None:
            ip, port = self.address
            service = None
        else:
            ip, port, service = self.service.hostname, self.port, self.service
        return Connection(
            ip, port, spec.send_bytes, spec.receive_bytes, spec.hold_s, service, trace, sni=spec.sni
        )

    def open(self, conn: Connection) -> Proc:
        """Open ``conn`` from the configured source: the generator to run (it returns the
        :class:`sim.tcp.TcpOutcome`)."""
        if self.spec.from_ == "outside":
            return self.plane.open(self.world, None, conn)
        client = self.clients[self._next_client % len(self.clients)]
        self._next_client += 1
        return self.plane.open(self.world, client, conn)

    def _one(self) -> Proc:
        try:
            if self.spec.is_tcp:
                yield from self.open(self.connection())
            else:
                yield from self.send(self.request(self._pick()))
        finally:
            self.completed += 1
            self.last_time = self.world.env.now


_EXTERNAL = MeshService(name="", namespace="", hostname="", ports=())
"""Placeholder Service of traffic sent to an ``IP:port`` (no Service behind it)."""


def run_until_quiet(env: simpy.Environment, driver: TrafficDriver, hard_limit: float) -> None:
    """Advance the clock until the driver is finished (or ``hard_limit`` is reached), then let
    work the clients no longer wait for (abandoned attempts, mirrors) finish."""
    while not driver.finished and env.now < hard_limit:
        env.run(until=min(hard_limit, env.now + 1.0))
    drain(env, hard_limit)


def drain(env: simpy.Environment, hard_limit: float) -> None:
    """Process the remaining events scheduled before ``hard_limit``."""
    while env.peek() < hard_limit:
        env.step()


def _tls_client(world: World, spec: TrafficSpec) -> tuple[bytes | None, bytes | None]:
    """The CA an ``https`` client trusts and the certificate it presents, from the Secrets
    ``ca_certificate`` and ``client_certificate`` name (None: the mesh CA only / none)."""
    secrets = [r for r in world.resources if isinstance(r, Secret)]
    trust = cert = None
    if spec.ca_certificate:
        trust = client_trust(secrets, spec.ca_certificate)
        if trust is None:
            raise RunnerError(
                f'ca_certificate: no Secret "{spec.ca_certificate}" with a certificate'
            )
    if spec.client_certificate:
        pair = client_pair(secrets, spec.client_certificate)
        if pair is None:
            raise RunnerError(
                f'client_certificate: no Secret "{spec.client_certificate}" with a certificate '
                "and key"
            )
        cert = pair.cert
    return trust, cert
