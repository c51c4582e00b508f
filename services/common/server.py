"""Run a service under uvicorn, with a listening socket that the `refuse` knob can close.

`refuse` is concrete: the main listening socket (`PORT`) is closed, so a new TCP connection is
refused by the kernel (ECONNREFUSED; an Envoy upstream reports `UF`, "connection refused").
Connections that are already open get 503 `refusing` with `Connection: close` on application
routes. When `refuse` is turned off the socket is bound again on the same port. Because the main
port is closed while refusing, the knobs stay reachable on an optional second listener,
`ADMIN_PORT`, which serves the same app (probes and `/admin/knobs` included) and is never closed.
That listener is bound on the loopback address whatever `HOST` is: in a pod, only a process in
the pod's own network namespace (``kubectl exec``, the kubelet's exec probes) reaches it, never
another pod, the sidecar's inbound passthrough or the ingress gateway.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from services.common.app import knob_state
from services.common.knobs import Knobs, KnobState
from services.common.settings import Settings, SettingsError

log = logging.getLogger("services.server")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only for such
    # sockets, and without it a keep-alive response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def loopback_of(host: str) -> str:
    """The loopback address of ``host``'s family: where ``ADMIN_PORT`` listens."""
    return "::1" if ":" in host else "127.0.0.1"


class RefusableServer(uvicorn.Server):
    """A uvicorn server whose first listener can be closed and re-opened at run time."""

    def __init__(self, config: uvicorn.Config, knobs: KnobState, host: str, port: int) -> None:
        super().__init__(config)
        self._knobs = knobs
        self._host = host
        self._port = port
        self._refusing = False
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def _protocol(self, _loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
        config = self.config
        protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=_loop,
        )
        return protocol

    async def apply(self, refuse: bool) -> None:
        """Close (refuse) or re-open the main listener."""
        async with self._lock:
            if refuse == self._refusing or not getattr(self, "servers", None):
                return
            if refuse:
                self.servers[0].close()
                log.warning("refusing: closed the listener on port %d", self._port)
            else:
                loop = asyncio.get_running_loop()
                sock = _bind(self._host, self._port)
                self.servers[0] = await loop.create_server(self._protocol, sock=sock)
                log.warning("accepting again on port %d", self._port)
            self._refusing = refuse

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        knobs = self._knobs
        loop = asyncio.get_running_loop()

        def _start(refuse: bool) -> None:
            task = loop.create_task(self.apply(refuse))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        def _changed(new: Knobs) -> None:
            loop.call_soon_threadsafe(_start, new.refuse)

        knobs.on_change(_changed)
        await self.apply(knobs.current.refuse)


def main(service: str, build_app: Callable[[Settings], FastAPI]) -> None:
    """`python -m services.<pkg>`: read the environment, build the app, serve it. A bad setting
    or a port in use ends the process with one line on stderr and exit status 2."""
    try:
        settings = Settings.from_env(service)
        app = build_app(settings)
        serve(app, settings)
    except SettingsError as exc:
        sys.stderr.write(f"{service}: error: {exc}\n")
        raise SystemExit(2) from None
    except OSError as exc:
        sys.stderr.write(f"{service}: error: cannot listen: {exc.strerror or exc}\n")
        raise SystemExit(2) from None


def serve(app: FastAPI, settings: Settings) -> None:
    """Serve `app` on `HOST:PORT` (and `ADMIN_PORT` when set) until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {settings.service}-{settings.version} %(levelname)s %(message)s",
        stream=sys.stdout,
    )
    main = _bind(settings.host, settings.port)
    port = main.getsockname()[1]
    sockets = [main]
    if settings.admin_port is not None:
        sockets.append(_bind(loopback_of(settings.host), settings.admin_port))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = RefusableServer(config, knob_state(app), settings.host, port)
    admin = f", admin port {sockets[1].getsockname()[1]}" if len(sockets) > 1 else ""
    log.info("%s listening on %s:%d%s", settings.service, settings.host, port, admin)
    server.run(sockets=sockets)
