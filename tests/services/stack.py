"""Start the real services as processes (`python -m services.<pkg>`) on free 127.0.0.1 ports,
wait for `/readyz`, and stop every process by its PID."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

#: Kubernetes Service name -> Python package.
PACKAGES = {
    "frontend": "frontend",
    "api-gateway": "api_gateway",
    "user": "user",
    "product": "product",
    "order": "order",
    "payment": "payment",
    "notification": "notification",
}
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The test's environment without proxies (a CI proxy must not capture 127.0.0.1 calls)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in PROXY_VARS and not k.upper().endswith("_URL")
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def env_url_name(service: str) -> str:
    return service.upper().replace("-", "_") + "_URL"


@dataclass
class Proc:
    name: str
    url: str
    port: int
    popen: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


@dataclass
class Stack:
    """Running services by name; `url(name)` is where a test reaches each one directly."""

    workdir: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.procs[name].url

    def admin_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.procs[name].env['ADMIN_PORT']}"

    def start(self, name: str, env: Mapping[str, str], port: int | None = None) -> Proc:
        port = port or free_port()
        full = clean_env()
        full.update(env)
        full.update({"HOST": "127.0.0.1", "PORT": str(port)})
        full.setdefault("POD_NAME", name.replace("@", "-") + "-0")  # as a Deployment's pod
        full.setdefault(
            "DATA_DIR", str(self.workdir / "data" / PACKAGES[name.split("@", maxsplit=1)[0]])
        )
        log = self.workdir / f"{name.replace('@', '-')}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", f"services.{PACKAGES[name.split('@', maxsplit=1)[0]]}"],
            cwd=ROOT,
            env=full,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        proc = Proc(name, f"http://127.0.0.1:{port}", port, popen, log, dict(env))
        self.procs[name] = proc
        return proc

    def wait_ready(self, names: list[str] | None = None, timeout_s: float = 40.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(names or self.procs)
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while pending:
                name = pending[0]
                proc = self.procs[name]
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{proc.log.read_text()[-3000:]}")
                try:
                    if client.get(proc.url + "/readyz").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready:\n{proc.log.read_text()[-3000:]}")
                time.sleep(0.05)

    def restart(self, name: str) -> None:
        old = self.procs[name]
        old.stop()
        self.start(name, old.env, port=old.port)
        self.wait_ready([name])

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


@contextmanager
def running_shop(workdir: Path, common_env: Mapping[str, str] | None = None) -> Iterator[Stack]:
    """All seven services wired to each other directly by 127.0.0.1 URLs (no proxy), each with
    an `ADMIN_PORT` so a test can switch `refuse` off again."""
    stack = Stack(workdir)
    ports = {name: free_port() for name in PACKAGES}
    urls = {env_url_name(n): f"http://127.0.0.1:{p}" for n, p in ports.items()}
    try:
        for name, port in ports.items():
            env = {**urls, "ADMIN_PORT": str(free_port()), **(common_env or {})}
            stack.start(name, env, port=port)
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()
