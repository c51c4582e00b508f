"""Has a configuration change reached the proxies? istiod's own account, read like istioctl does.

istiod keeps, per connected proxy and per xDS type, the nonce of the last response it sent and
the last one the proxy acknowledged (``/debug/syncz``, what ``istioctl proxy-status`` shows as
SYNCED/STALE); ``/debug/configz`` lists the Istio resources istiod currently holds, with their
resourceVersion. Both are read with ``pilot-discovery request GET ...`` inside the istiod pod
(a request from localhost needs no token).

A change has converged when istiod holds every applied resource at its new resourceVersion (and
none of the deleted ones), and then every proxy has acknowledged what it was last sent and was
sent something new (or istiod had nothing new for it for :data:`QUIET_S`). A proxy that keeps an
unacknowledged nonce has NACKed or not received the push: the error names it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["QUIET_S", "XDS_TYPES", "ProxySync", "config_versions", "parse_syncz", "pending_proxies"]

QUIET_S = 2.0
"""After istiod holds the new config, how long a proxy that was sent nothing new counts as
converged (istiod debounces pushes by 100 ms)."""

XDS_TYPES = {"cluster": "CDS", "listener": "LDS", "route": "RDS", "endpoint": "EDS"}


@dataclass(frozen=True, slots=True)
class ProxySync:
    """One proxy's sent and acknowledged nonces per xDS type (``cluster``, ``listener``...)."""

    proxy: str
    sent: Mapping[str, str]
    acked: Mapping[str, str]

    @property
    def synced(self) -> bool:
        """Every type's last sent nonce is acknowledged."""
        return all(self.acked.get(t, "") == n for t, n in self.sent.items() if n)

    def describe(self) -> str:
        """``RDS sent 3f2a, acked 9c1b`` for each type not acknowledged."""
        parts = [
            f"{XDS_TYPES[t]} sent {n}, acked {self.acked.get(t) or 'nothing'}"
            for t, n in sorted(self.sent.items())
            if n and self.acked.get(t, "") != n
        ]
        return "; ".join(parts) or "synced"


def parse_syncz(text: str) -> dict[str, ProxySync]:
    """``/debug/syncz`` output -> proxy id (``pod.namespace``) -> its sync state."""
    data = json.loads(text or "[]")
    out = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict) or not item.get("proxy"):
            continue
        sent = {t: str(item.get(f"{t}_sent") or "") for t in XDS_TYPES}
        acked = {t: str(item.get(f"{t}_acked") or "") for t in XDS_TYPES}
        out[str(item["proxy"])] = ProxySync(str(item["proxy"]), sent, acked)
    return out


def config_versions(text: str) -> dict[tuple[str, str, str], str]:
    """``/debug/configz`` output -> (kind, namespace, name) -> resourceVersion."""
    data = json.loads(text or "[]")
    out: dict[tuple[str, str, str], str] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        meta: Any = item.get("metadata") or item
        kind = item.get("kind") or (item.get("type") or "")
        name, namespace = meta.get("name"), meta.get("namespace", "")
        if kind and name:
            out[(str(kind), str(namespace), str(name))] = str(meta.get("resourceVersion", ""))
    return out


def pending_proxies(
    before: Mapping[str, ProxySync], now: Mapping[str, ProxySync], quiet_elapsed: bool
) -> list[ProxySync]:
    """The proxies that have not converged yet (see the module docstring)."""
    out = []
    for proxy, state in sorted(now.items()):
        if not state.synced:
            out.append(state)
            continue
        old = before.get(proxy)
        if old is not None and old.sent == state.sent and not quiet_elapsed:
            out.append(state)
    return out
