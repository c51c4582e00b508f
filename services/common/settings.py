"""Service settings read from the environment (the container's `env:` in Kubernetes).

Names are the contract the runners rely on: `HOST`, `PORT`, `ADMIN_PORT`, `VERSION`, `POD_NAME`,
`DATA_DIR`, `DATABASE_URL`, `REDIS_URL`, `SEED`, `LATENCY_MS`, `ERROR_RATE`, `REFUSE`, and
`<SERVICE>_URL` for each downstream service, whose default is the in-mesh name `http://<service>:8080` so that a
sidecar reached through `HTTP_PROXY` picks the route by the Host header, as Istio does after
iptables capture.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Downstream services a service may call, by Kubernetes Service name.
DOWNSTREAM_SERVICES = ("api-gateway", "user", "product", "order", "payment", "notification")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


def env_url_name(service: str) -> str:
    """`product` -> `PRODUCT_URL`, `api-gateway` -> `API_GATEWAY_URL`."""
    return service.upper().replace("-", "_") + "_URL"


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={raw!r}: expected a number between {lo:g} and {hi:g}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={raw!r}: expected an integer between {lo} and {hi}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a service reads from its environment, parsed and checked once at start."""

    service: str
    host: str = "0.0.0.0"  # a container listens on all interfaces
    port: int = 8080
    admin_port: int | None = None
    version: str = "v1"
    pod: str = ""
    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    seed: int = 0
    latency_ms: float = 0.0
    error_rate: float = 0.0
    refuse: bool = False
    downstream_timeout_s: float = 5.0
    downstream: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings of `service` from `env` (default: the process environment)."""
        env = os.environ if env is None else env
        admin_raw = env.get("ADMIN_PORT", "").strip()
        admin_port = _int(env, "ADMIN_PORT", 0, 0, 65535) if admin_raw else None
        folder = service.replace("-", "_")
        return cls(
            service=service,
            host=env.get("HOST", "0.0.0.0"),
            port=_int(env, "PORT", 8080, 0, 65535),
            admin_port=admin_port,
            version=env.get("VERSION", "v1").strip() or "v1",
            # the Downward API's metadata.name; a pod's host name is its name too
            pod=env.get("POD_NAME", "").strip() or socket.gethostname(),
            data_dir=Path(env.get("DATA_DIR") or Path("data") / folder),
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            seed=_int(env, "SEED", 0, 0, 2**63 - 1),
            latency_ms=_float(env, "LATENCY_MS", 0.0, 0.0, 600_000.0),
            error_rate=_float(env, "ERROR_RATE", 0.0, 0.0, 1.0),
            refuse=_bool(env, "REFUSE", False),
            downstream_timeout_s=_float(env, "DOWNSTREAM_TIMEOUT_S", 5.0, 0.001, 600.0),
            downstream={
                name: env.get(env_url_name(name)) or f"http://{name}:8080"
                for name in DOWNSTREAM_SERVICES
            },
            extra=dict(env),
        )

    def float_env(self, name: str, default: float, lo: float, hi: float) -> float:
        """A service-specific numeric setting (e.g. payment's `DECLINE_RATE`)."""
        return _float(self.extra, name, default, lo, hi)

    def str_env(self, name: str, default: str) -> str:
        """A service-specific text setting (e.g. user's `JWT_ISSUER`)."""
        return self.extra.get(name) or default
