"""Prometheus and promtool: finding (or installing) them, starting one, and asking it PromQL.

meshplay uses Debian's ``prometheus`` package (2.42 here; it brings ``promtool``). The package's
systemd unit is never used: meshplay starts the binary itself, on an allocated 127.0.0.1 port,
as a child tracked by PID (:class:`~cluster.local.procs.Supervisor`), with its TSDB in the run's
folder. :func:`ensure_binaries` installs the package with ``apt-get`` when it is missing and the
user may do so (root, or password-less sudo), and otherwise says how.

:class:`PrometheusClient` speaks the HTTP API (``/api/v1/query``, ``/api/v1/query_range``,
``/api/v1/targets``, ``/-/ready``) with the standard library.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesh.observe.istio_metrics import Labels
from mesh.observe.query import QueryError, QueryResult, result_from_api, substitute
from mesh.runner import RunnerError

__all__ = [
    "PrometheusClient",
    "PrometheusStepMetrics",
    "ensure_binaries",
    "find_binary",
    "prometheus_argv",
]

PACKAGE = "prometheus"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_binary(name: str) -> Path | None:
    """``prometheus`` or ``promtool`` on PATH (or where Debian puts them)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidate = Path("/usr/bin") / name
    return candidate if candidate.is_file() else None


def _apt_prefix() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None:
        return None
    probe = subprocess.run([sudo, "-n", "true"], capture_output=True, check=False)
    return [sudo, "-n"] if probe.returncode == 0 else None


def ensure_binaries(report: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """Paths of ``prometheus`` and ``promtool``, installing Debian's package when missing.

    Raises :class:`RunnerError` with the command to run when they cannot be installed here.
    """
    prometheus, promtool = find_binary("prometheus"), find_binary("promtool")
    if prometheus is not None and promtool is not None:
        return prometheus, promtool
    prefix = _apt_prefix()
    hint = "sudo apt-get install -y --no-install-recommends prometheus"
    if prefix is None or shutil.which("apt-get") is None:
        raise RunnerError(f"Prometheus is not installed; install it with: {hint}")
    say = report or (lambda text: sys.stderr.write(text + "\n"))
    say("meshplay: installing Debian's prometheus package (for PromQL and monitoring)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for argv in (
        [*prefix, "apt-get", *lock, "update", "-qq"],
        [*prefix, "apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", PACKAGE],
    ):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RunnerError(
                f"installing Prometheus failed ({' '.join(argv)}):\n{done.stderr[-2000:]}\n"
                f"install it with: {hint}"
            )
    prometheus, promtool = find_binary("prometheus"), find_binary("promtool")
    if prometheus is None or promtool is None:
        raise RunnerError(f"the prometheus package did not provide its binaries; try: {hint}")
    return prometheus, promtool


def prometheus_argv(
    binary: Path,
    config: Path,
    storage: Path,
    port: int,
    *,
    retention: str = "1d",
) -> list[str]:
    """The command line of one Prometheus serving ``storage`` on 127.0.0.1:``port``."""
    return [
        str(binary),
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--storage.tsdb.retention.time={retention}",
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


class PrometheusClient:
    """A small client for one Prometheus' HTTP API."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with _OPENER.open(url, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read())
            except ValueError:
                body = {}
            raise QueryError(str(body.get("error") or f"HTTP {exc.code} from {url}")) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise QueryError(f"cannot reach Prometheus at {self.url}: {exc}") from exc

    def ready(self) -> bool:
        """``/-/ready`` answers 200."""
        try:
            with _OPENER.open(self.url + "/-/ready", timeout=1.0) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float, alive: Callable[[], bool] = lambda: True) -> None:
        """Wait until ready; :class:`RunnerError` when ``alive()`` turns false or time is up."""
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if not alive():
                raise RunnerError(f"Prometheus at {self.url} exited while starting")
            if time.monotonic() > deadline:
                raise RunnerError(f"Prometheus at {self.url} not ready in {timeout_s:g}s")
            time.sleep(0.05)

    def query(self, expr: str, at: float | None = None) -> QueryResult:
        """An instant query (at epoch ``at``, default now)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self._get("/api/v1/query", params)
        return result_from_api(body.get("data", {}))

    def query_range(
        self, expr: str, start: float, end: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        """Series -> points of a range query."""
        params = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step_s:g}",
        }
        body = self._get("/api/v1/query_range", params)
        out: dict[Labels, list[tuple[float, float]]] = {}
        for item in body.get("data", {}).get("result", []):
            labels = tuple(sorted((str(k), str(v)) for k, v in item.get("metric", {}).items()))
            points = []
            for t, v in item.get("values", []):
                try:
                    points.append((float(t), float(v)))
                except (TypeError, ValueError):
                    points.append((float(t), math.nan))
            out[labels] = points
        return out

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets (``/api/v1/targets``)."""
        body = self._get("/api/v1/targets", {"state": "active"})
        found: list[dict[str, Any]] = body.get("data", {}).get("activeTargets", [])
        return found

    def wait_scraped(self, after: float, timeout_s: float, jobs: Sequence[str] = ()) -> bool:
        """Wait until every target (of ``jobs``, or all) was scraped at or after epoch
        ``after``; False when ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                targets = [t for t in self.targets() if not jobs or t.get("scrapePool") in jobs]
            except QueryError:
                targets = []
            if targets and all(_scraped_at(t) >= after for t in targets):
                return True
            time.sleep(0.1)
        return False


def _scraped_at(target: dict[str, Any]) -> float:
    text = str(target.get("lastScrape", ""))
    if not text or text.startswith("0001"):
        return 0.0
    from datetime import datetime

    text = text.replace("Z", "+00:00")
    head, _, rest = text.partition(".")
    if rest:  # Go prints nanoseconds; Python reads at most microseconds
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class PrometheusStepMetrics:
    """One step's metrics in a Prometheus: instant queries at ``end`` (epoch seconds),
    ``$__range`` standing for ``range_s``."""

    client: PrometheusClient
    end: float
    range_s: float

    def query(self, expr: str) -> QueryResult:
        """An instant query at the end of the step."""
        return self.client.query(substitute(expr, self.range_s), self.end)

    def query_range(
        self, expr: str, span_s: float, step_s: float
    ) -> dict[Labels, list[tuple[float, float]]]:
        """The expression every ``step_s`` over the last ``span_s`` seconds of the step."""
        text = substitute(expr, self.range_s)
        return self.client.query_range(text, self.end - span_s, self.end, step_s)
