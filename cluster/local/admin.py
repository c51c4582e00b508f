"""Envoy's admin API on 127.0.0.1: what ``istioctl proxy-status``/``proxy-config`` read.

``/ready`` answers ``LIVE`` once the initial xDS fetches are done and listeners are bound;
``/stats?format=json`` gives counters such as ``listener_manager.lds.update_rejected``;
``/config_dump`` is the config the proxy actually runs; ``/clusters?format=json`` the endpoints
and their health. Requests never go through a proxy (``HTTP_PROXY`` is ignored here).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast

__all__ = ["AdminClient", "AdminError"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AdminError(OSError):
    """The admin endpoint could not be reached or answered an error."""


class AdminClient:
    """A small client for one Envoy's admin listener."""

    def __init__(self, port: int, timeout_s: float = 2.0) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.timeout_s = timeout_s

    def request(self, path: str, method: str = "GET") -> tuple[int, str]:
        """Status and body text of one admin request."""
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with _OPENER.open(req, timeout=self.timeout_s) as resp:
                return int(resp.status), resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise AdminError(f"admin {self.url}{path}: {exc}") from exc

    def ready(self) -> bool:
        """``/ready`` says LIVE."""
        try:
            status, body = self.request("/ready")
        except AdminError:
            return False
        return status == 200 and body.strip() == "LIVE"

    def stats(self, pattern: str = "") -> dict[str, int]:
        """Counters and gauges whose name matches the regex ``pattern`` (histograms left out)."""
        query = "/stats?format=json"
        if pattern:
            query += "&filter=" + urllib.parse.quote(pattern)
        status, body = self.request(query)
        if status != 200:
            raise AdminError(f"admin {self.url}/stats: HTTP {status}")
        out: dict[str, int] = {}
        for item in json.loads(body).get("stats", []):
            if "value" in item and isinstance(item["value"], int):
                out[str(item["name"])] = int(item["value"])
        return out

    def memory(self) -> dict[str, int]:
        """``/memory``: tcmalloc's figures in bytes (``allocated``, the heap in use, is the gauge
        ``server.memory_allocated``; ``heap_size``, ``pageheap_unmapped``, ...)."""
        status, body = self.request("/memory")
        if status != 200:
            raise AdminError(f"admin {self.url}/memory: HTTP {status}")
        return {str(k): int(v) for k, v in json.loads(body).items()}

    def config_dump(self, resource: str = "", include_eds: bool = False) -> dict[str, Any]:
        """``/config_dump`` as JSON."""
        params = []
        if resource:
            params.append(f"resource={resource}")
        if include_eds:
            params.append("include_eds")
        path = "/config_dump" + ("?" + "&".join(params) if params else "")
        status, body = self.request(path)
        if status != 200:
            raise AdminError(f"admin {self.url}{path}: HTTP {status}: {body[:200]}")
        return cast(dict[str, Any], json.loads(body))

    def clusters(self) -> dict[str, Any]:
        """``/clusters?format=json``."""
        status, body = self.request("/clusters?format=json")
        if status != 200:
            raise AdminError(f"admin {self.url}/clusters: HTTP {status}")
        return cast(dict[str, Any], json.loads(body))

    def server_info(self) -> dict[str, Any]:
        """``/server_info``."""
        status, body = self.request("/server_info")
        if status != 200:
            raise AdminError(f"admin {self.url}/server_info: HTTP {status}")
        return cast(dict[str, Any], json.loads(body))

    def quit(self) -> None:
        """``POST /quitquitquit``: ask Envoy to exit."""
        self.request("/quitquitquit", method="POST")
