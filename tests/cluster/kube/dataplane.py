"""A data plane for the fake cluster: the simulator carries what the generator pod would send.

When the runner creates a load generator pod, :class:`SimDataPlane` reads the job it was given
(``MESHPLAY_TRAFFIC``), builds the mesh from the objects the fake API holds at that moment (so
what the runner applied and deleted is what runs), turns the knobs the runner set on the fake
pods into breaks and the Deployments' current replicas into pods, runs the traffic in the
simulator, and writes each RequestRecord into the ``istio-proxy`` log of the pod that would have
logged it, *rendered through meshplay's Istio access-log format*: every ``%OPERATOR%`` of
:func:`cluster.kube.telemetry.access_log_labels` is replaced by the value Envoy would print, and
what Envoy cannot know on a real cluster (the ``x-meshplay-source-*`` headers, the pod's labels)
is left out. The runner must get the records back from those lines.

Lines are stamped on the fake cluster's clock (:mod:`tests.cluster.kube.clock`): the traffic
starts when the generator pod starts, and the clock has moved past its last request by the time
the generator reports ``done``, as the traffic of a real generator pod takes its wall time.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cluster.kube.loadgen import ENV_VAR, GeneratorJob
from cluster.kube.manifests import Manifest, retarget_namespace
from cluster.kube.telemetry import access_log_labels
from mesh.envoy.memory import HEAP_MODEL
from mesh.envoy.translate import translate_proxy
from mesh.lesson import BreakAction, Lesson
from mesh.model import RESOURCE_KINDS
from mesh.records import (
    LOGGED_REQUEST_HEADERS,
    ConnectionSecurityPolicy,
    Reporter,
    RequestRecord,
)
from mesh.runner import DriveContext
from mesh.source import load_text
from mesh.state import MeshState
from mesh.topology import INGRESS_GATEWAY, build_topology
from sim.cluster import OutlierState
from sim.runner import _run, configure
from sim.traffic import TrafficDriver
from sim.world import World
from tests.cluster.kube.fake_api import FakeKube, Obj

_OPERATOR = re.compile(r"%[A-Z_]+(?:\([^)]*\))?%")
_MODELLED = {c.KIND for c in RESOURCE_KINDS}
ISTIO_SYSTEM = "istio-system"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def operator_values(r: RequestRecord, at: float, workload: str, namespace: str) -> dict[str, Any]:
    """What Envoy prints for each command operator of the format, for one record."""
    tcp = r.is_tcp
    mtls = r.connection_security_policy is ConnectionSecurityPolicy.MUTUAL_TLS
    dest = f"{r.destination_workload};{r.destination_namespace};{r.destination_app};{r.destination_version};Kubernetes"
    spiffe = lambda p: None if p in ("", RequestRecord.UNKNOWN) else f"spiffe://{p}"  # noqa: E731
    return {
        "%START_TIME%": _iso(at),
        "%DURATION%": round(r.duration_ms),
        "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%": None if tcp else round(r.duration_ms * 1000),
        "%ROUTE_NAME%": r.route_name or None,
        "%UPSTREAM_CLUSTER_RAW%": r.upstream_cluster or None,
        "%UPSTREAM_HOST%": r.upstream_host or None,
        "%REQ(:METHOD)%": None if tcp else r.method,
        "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%": None if tcp else r.path,
        "%REQ(:AUTHORITY)%": r.authority or None,
        "%RESPONSE_CODE%": r.response_code,
        "%RESPONSE_FLAGS%": r.flags_text,
        "%RESPONSE_CODE_DETAILS%": r.response_code_details or None,
        "%UPSTREAM_REQUEST_ATTEMPT_COUNT%": None if tcp else r.attempts,
        "%BYTES_RECEIVED%": r.bytes_received,
        "%BYTES_SENT%": r.bytes_sent,
        "%REQ(X-REQUEST-ID)%": r.request_id or None,
        "%REQ(X-B3-TRACEID)%": r.trace_id or None,
        "%REQ(TRACEPARENT)%": None,
        "%UPSTREAM_METADATA(istio:workload)%": dest
        if r.destination_workload != RequestRecord.UNKNOWN
        else None,
        "%UPSTREAM_PEER_URI_SAN%": spiffe(r.destination_principal),
        "%DOWNSTREAM_PEER_URI_SAN%": spiffe(r.source_principal) if mtls else None,
        "%DOWNSTREAM_LOCAL_URI_SAN%": spiffe(r.destination_principal) if mtls else None,
        "%DOWNSTREAM_TLS_VERSION%": "TLSv1.3" if mtls else None,
        "%ENVIRONMENT(ISTIO_META_WORKLOAD_NAME)%": workload,
        "%ENVIRONMENT(POD_NAMESPACE)%": namespace,
        "%PROTOCOL%": None if tcp else "HTTP/1.1",
        "%CONNECTION_TERMINATION_DETAILS%": None,
        # the request headers every access log carries (end-user: what productpage derives
        # from the session cookie; an absent header is Envoy's "-")
        **{
            f"%REQ({h.upper()})%": None if tcp else r.header(h) or None
            for h in LOGGED_REQUEST_HEADERS
        },
    }


def render(r: RequestRecord, at: float, workload: str, namespace: str) -> str:
    """The access-log line an Istio sidecar with meshplay's provider writes for ``r``."""
    values = operator_values(r, at, workload, namespace)
    out: dict[str, Any] = {}
    for key, fmt in access_log_labels(r.reporter).items():
        ops = _OPERATOR.findall(fmt)
        if ops == [fmt]:
            out[key] = values.get(fmt) if fmt in values else None  # x-meshplay-* headers: not sent
            continue
        text = fmt
        for op in ops:
            value = values.get(op)
            text = text.replace(op, "-" if value is None else str(value))
        out[key] = text
    return json.dumps(out)


class SimDataPlane:
    """Runs a generator pod's job in the simulator over the fake cluster's current objects."""

    def __init__(self, lesson: Lesson, *, delay_s: float = 0.0) -> None:
        self.lesson = lesson
        self.delay_s = delay_s
        self.jobs: list[GeneratorJob] = []
        self.lock = threading.Lock()
        self.outliers: dict[str, dict[str, OutlierState]] = {}
        """Each proxy's outlier detectors as the last job left them, by pod and cluster."""
        self.logged: list[RequestRecord] = []
        """Every record written into a proxy's log, ``start_time`` in epoch seconds (what a
        Prometheus scraping the proxies would have counted: see ``recorded_prometheus``)."""

    def __call__(self, kube: FakeKube, pod: Obj) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0].get("env", [])}
        job = GeneratorJob.from_json(env[ENV_VAR])
        with self.lock:
            self.jobs.append(job)
        # the traffic starts on a whole millisecond, a fraction of one after the "started" line:
        # Envoy's %START_TIME% keeps milliseconds, so each record then stays on its side of a
        # warm-up's end (started + warmup_s), as in the simulator
        now = kube.clock.time()
        t0 = math.ceil(now * 1000 + 1) / 1000
        kube.clock.run(t0 - now)
        kube.write_log(ns, name, "loadgen", json.dumps({"event": "started", "at": t0 - 0.0002}))
        try:
            records = self._simulate(kube, job, ns)
        except Exception as exc:  # the generator's own error line
            kube.write_log(
                ns, name, "loadgen", json.dumps({"event": "error", "message": repr(exc)})
            )
            kube.end_container(ns, name, "loadgen")
            raise
        impersonated = (pod["metadata"].get("annotations") or {}).get(
            "meshplay.dev/impersonates", ""
        )
        pods = _pods_by_workload(kube, ns)
        for r in records:
            at = t0 + r.start_time
            if r.reporter is Reporter.SOURCE:
                workload = r.source_workload
                target = name if workload == impersonated else _first(pods, workload)
                env_workload = name if workload == impersonated else workload
            else:
                workload = r.destination_workload
                target = _first(pods, workload)
                env_workload = workload
            where = ns
            if workload == INGRESS_GATEWAY:  # the gateway's own log, in istio-system
                where, target = (
                    ISTIO_SYSTEM,
                    _first(_pods_by_workload(kube, ISTIO_SYSTEM), workload),
                )
            if target:
                line = render(r, at, env_workload, where)
                kube.write_log(where, target, "istio-proxy", line, at=at)
                with self.lock:
                    self.logged.append(replace(r, start_time=at))
        if self.delay_s:
            time.sleep(self.delay_s)
        duration = max((r.start_time + r.duration_ms / 1000 for r in records), default=0.0)
        kube.clock.run(t0 + duration - kube.clock.time())  # the traffic took its time
        kube.write_log(
            ns,
            name,
            "loadgen",
            json.dumps({"event": "progress", "fraction": 1.0, "sent": len(records)}),
        )
        kube.write_log(
            ns,
            name,
            "loadgen",
            json.dumps(
                {
                    "event": "done",
                    "sent": len(records),
                    "failed": 0,
                    "dropped": 0,
                    "wall_s": duration,
                }
            ),
        )
        kube.end_container(ns, name, "loadgen")

    def _state(self, kube: FakeKube, ns: str) -> MeshState:
        """The mesh the fake cluster's objects make now, in the app's own namespace (the
        simulator's)."""
        home = self.lesson.app.behavior.namespace
        docs = [
            retarget_namespace(Manifest(_clean(o)), ns, home).body
            for o in kube.objects.values() if o.get("kind") in _MODELLED
        ]  # fmt: skip
        text = "\n---\n".join(json.dumps(o) for o in docs)
        return MeshState(load_text(text, "<fake cluster>", home).resources)

    def memory(self, kube: FakeKube, ns: str, pod: str) -> int | None:
        """The heap (bytes) of ``pod``'s Envoy, as the simulator's model gives it for the
        configuration istiod would push it now (:data:`mesh.envoy.memory.HEAP_MODEL`): what
        ``pilot-agent request GET memory`` answers on the fake cluster. None for a pod
        without a sidecar."""
        obj = next(iter(kube.find("Pod", ns, pod)), None)
        if obj is None or not any(c["name"] == "istio-proxy" for c in obj["spec"]["containers"]):
            return None
        workload = next(w for w, names in _pods_by_workload(kube, ns).items() if pod in names)
        state = self._state(kube, ns)
        topology = build_topology(state.resources)
        found = next((p for p in topology.pods if p.workload == workload), None)
        if found is None:
            return None
        config = translate_proxy(state.resources, topology, found.name)
        return round(HEAP_MODEL.allocated_mb(config) * 2**20)

    def _simulate(self, kube: FakeKube, job: GeneratorJob, ns: str) -> list[RequestRecord]:
        state = self._state(kube, ns)
        topology, envoy = configure(state)
        world = World(
            topology, self.lesson.app.behavior, envoy, seed=job.seed, resources=state.resources
        )
        for action in _breaks(kube, ns):
            world.apply_break(action)
        world.restore_outliers(self.outliers)
        driver = TrafficDriver(world, job.traffic)
        driver.start()
        _run(world, driver, timeout_s=job.traffic.timeout_s,
             ctx=DriveContext(lambda _f, _n: None, lambda _b: None, threading.Event()))  # fmt: skip
        # the cluster's Envoys keep running between generator pods: so do their outlier detectors
        self.outliers = world.outlier_states(driver.last_time)
        return list(world.records)


def _clean(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = dict(out["metadata"])
    for key in ("managedFields", "resourceVersion", "uid"):
        meta.pop(key, None)
    out["metadata"] = meta
    return out


def _pods_by_workload(kube: FakeKube, ns: str) -> dict[str, list[str]]:
    """Pods by the Deployment that owns them; in istio-system, where the fake cluster's pods
    have no owner, by their ``app`` label (``istio-ingressgateway``)."""
    out: dict[str, list[str]] = {}
    for o in kube.find("Pod", ns):
        owner = (o["metadata"].get("ownerReferences") or [{}])[0].get("name", "")
        if owner:
            out.setdefault(owner.rsplit("-", 1)[0], []).append(o["metadata"]["name"])
        elif ns == ISTIO_SYSTEM and (app := (o["metadata"].get("labels") or {}).get("app")):
            out.setdefault(app, []).append(o["metadata"]["name"])
    return {k: sorted(v) for k, v in out.items()}


def _first(pods: Mapping[str, list[str]], workload: str) -> str:
    names = pods.get(workload) or []
    return names[0] if names else ""


def _breaks(kube: FakeKube, ns: str) -> list[BreakAction]:
    out = []
    for workload, names in _pods_by_workload(kube, ns).items():
        knobs = kube.pods.get((ns, names[0]))
        if knobs is None or not knobs.knobs:
            continue
        k = knobs.knobs
        out.append(BreakAction(workload=workload, latency_ms=k.get("latency_ms"),
                               error_rate=k.get("error_rate"), refuse=k.get("refuse")))  # fmt: skip
    return out
