"""A stateful, in-memory Kubernetes API at the HTTP level, for the real ``kubernetes`` client.

:class:`FakeKube` serves on 127.0.0.1 what the ``kube`` runner uses, as the API server answers
it: server-side apply (``PATCH application/apply-patch+yaml`` with field managers and conflicts),
merge patches (a Deployment's ``scale``, annotations, ConfigMaps), get, list with label
selectors, delete, watch (newline-delimited events), ``/version``, a container's log (whole,
``sinceSeconds``, ``follow``) and exec over WebSocket (``v4.channel.k8s.io``: stdout, stderr,
the exit status on channel 3). A client reaches it through :meth:`kubeconfig`.

What a cluster does by itself is modelled just enough: a Deployment's pods (the sidecar added in
an injected namespace, ready unless told otherwise), a pod's status, Istio's CRDs, istiod's
``/debug/configz`` and ``/debug/syncz`` (every proxy acknowledges every push unless told not to),
the services' knobs. Failures are switches: :attr:`reject` (422), objects owned by another field
manager (409), :attr:`never_ready`, :meth:`go_away` (the socket closes, and opens again later).
What the generator pod "sends" is up to :attr:`data_plane`, called when one is created.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cluster.kube.admin import ISTIO_CRDS
from tests.cluster.kube.clock import ClusterClock

Obj = dict[str, Any]
Key = tuple[str, str, str, str]  # group, plural, namespace, name

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CORE_KINDS = {
    "namespaces": ("Namespace", False), "services": ("Service", True), "pods": ("Pod", True),
    "serviceaccounts": ("ServiceAccount", True), "configmaps": ("ConfigMap", True),
    "persistentvolumeclaims": ("PersistentVolumeClaim", True), "secrets": ("Secret", True),
}  # fmt: skip


def _flatten(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf paths of a JSON value (lists are leaves, as atomic lists in SSA)."""
    if isinstance(value, dict) and value:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, (*prefix, str(k))))
        return out
    return {prefix: value}


def _unflatten(leaves: dict[tuple[str, ...], Any]) -> Obj:
    out: Obj = {}
    for path, value in sorted(leaves.items(), key=lambda kv: len(kv[0])):
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if path:
            node[path[-1]] = copy.deepcopy(value)
    return out


@dataclass
class FakePod:
    """Runtime facts of a pod the fake runs: container logs, knobs, readiness."""

    logs: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    knobs: dict[str, Any] = field(default_factory=dict)


class FakeKube:
    """The in-memory API server (start with :meth:`start`, stop with :meth:`stop`)."""

    def __init__(self) -> None:
        self.clock = ClusterClock()
        """The cluster's wall clock: what its logs are stamped with."""
        self.objects: dict[Key, Obj] = {}
        self.owners: dict[Key, dict[tuple[str, ...], str]] = {}
        self.version = 100
        self.events: list[tuple[int, str, Key, Obj]] = []
        self.pods: dict[tuple[str, str], FakePod] = {}
        self.cond = threading.Condition(threading.RLock())
        self.reject: dict[tuple[str, str], str] = {}
        """(kind, name) -> the message of a 422 for that object."""
        self.never_ready: set[str] = set()
        """Deployments whose pods' istio-proxy never becomes ready."""
        self.generator_waiting: tuple[str, str] | None = None
        """(reason, message) a created pod's first container waits with (an image pull error)."""
        self.stuck_proxies: set[str] = set()
        """Pod names whose proxy never acknowledges a push."""
        self.data_plane: Callable[[FakeKube, Obj], None] | None = None
        self.proxy_memory: Callable[[FakeKube, str, str], int | None] | None = None
        """Envoy's heap in use (bytes) of a pod's proxy, for its admin ``/memory`` (None: that
        pod's Envoy has no answer); unset: ``/memory`` fails like an Envoy that is not there."""
        self.prometheus: Callable[[str], list[Obj]] | None = None
        """Answers PromQL queries sent to Service istio-system/prometheus (None: no Prometheus)."""
        self.prometheus_http: Callable[[str, dict[str, list[str]]], Obj] | None = None
        """A fake Prometheus HTTP API behind that Service: (path after ``/proxy``, query) ->
        the whole JSON answer; when set, it answers instead of :attr:`prometheus`."""
        self.requests: list[tuple[str, str]] = []
        self.execs: list[tuple[str, str, list[str]]] = []
        self.on_request: Callable[[str, str], None] | None = None
        self.nonce = 1
        self.acked: dict[str, int] = {}
        self.crds = list(ISTIO_CRDS)
        self._server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()
        self.port = 0
        self.ip = 10
        with self.cond:
            self._add_istio()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKube:
        """Serve on 127.0.0.1 (the same port again after :meth:`stop`)."""
        fake = self

        class Handler(_Handler):
            kube = fake

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, name="fake-kube", daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket (clients get connection refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for conn in list(self.connections):  # and every open connection, as a crash would
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        with self.cond:
            self.cond.notify_all()

    @property
    def up(self) -> bool:
        """Serving."""
        return self._server is not None

    def go_away(self, for_s: float) -> None:
        """Stop answering now, and come back after ``for_s`` seconds (0: never)."""
        self.stop()
        if for_s > 0:
            timer = threading.Timer(for_s, self.start)
            timer.daemon = True
            timer.start()

    def kubeconfig(self, folder: Path, context: str = "fake") -> Path:
        """A kubeconfig whose context ``context`` points here."""
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}
                    ],
                    "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                    "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": context,
                }
            )
        )
        return path

    # -- the store -------------------------------------------------------------------------

    def _bump(self) -> str:
        self.version += 1
        return str(self.version)

    def _record(self, kind: str, key: Key, obj: Obj) -> None:
        with self.cond:
            self.events.append((self.version, kind, key, copy.deepcopy(obj)))
            self.cond.notify_all()

    def put(self, obj: Obj, manager: str = "kubectl-client-side-apply") -> Obj:
        """Store ``obj`` as written by ``manager`` (an object someone else owns)."""
        with self.cond:
            return self._apply(obj, manager, force=True)

    def find(self, kind: str, namespace: str = "", name: str = "") -> list[Obj]:
        """Stored objects of a kind (narrowed by namespace and name)."""
        with self.cond:
            return [
                copy.deepcopy(o)
                for o in self.objects.values()
                if o.get("kind") == kind
                and (not namespace or o["metadata"].get("namespace") == namespace)
                and (not name or o["metadata"]["name"] == name)
            ]

    def labelled(self, label: str, value: str) -> list[Obj]:
        """Stored objects carrying ``label=value``."""
        with self.cond:
            return [copy.deepcopy(o) for o in self.objects.values()
                    if (o["metadata"].get("labels") or {}).get(label) == value]  # fmt: skip

    def _key(self, obj: Obj, group: str = "", plural: str = "") -> Key:
        meta = obj["metadata"]
        return (group, plural, meta.get("namespace", ""), meta["name"])

    def _apply(self, patch: Obj, manager: str, force: bool, key: Key | None = None) -> Obj:
        group = patch.get("apiVersion", "v1").rpartition("/")[0]
        plural = _plural(group, patch["kind"])
        key = key or (
            group,
            plural,
            patch["metadata"].get("namespace", ""),
            patch["metadata"]["name"],
        )
        message = self.reject.get((patch["kind"], patch["metadata"]["name"]))
        if message is not None:
            raise _Status(422, "Invalid", f'{patch["kind"]}.{group or "core"} "{patch["metadata"]["name"]}" is invalid: {message}',
                          [{"reason": "FieldValueInvalid", "message": message, "field": "spec"}])  # fmt: skip
        current = self.objects.get(key)
        owners = self.owners.setdefault(key, {})
        leaves = _flatten({k: v for k, v in (current or {}).items() if k != "status"})
        new = _flatten({k: v for k, v in patch.items() if k != "status"})
        conflicts = [
            p for p, v in new.items()
            if p in leaves and leaves[p] != v and owners.get(p, manager) != manager
            and p[:2] != ("metadata", "resourceVersion")
        ]  # fmt: skip
        if conflicts and not force:
            other = owners[conflicts[0]]
            field_text = "." + ".".join(conflicts[0])
            raise _Status(409, "Conflict", f'Apply failed with 1 conflict: conflict with "{other}": {field_text}',
                          [{"reason": "FieldManagerConflict", "message": f'conflict with "{other}"', "field": field_text}])  # fmt: skip
        for p in [p for p, m in owners.items() if m == manager and p not in new]:
            leaves.pop(p, None)
            owners.pop(p, None)
        for p, v in new.items():
            leaves[p] = v
            owners[p] = manager
        obj = _unflatten(leaves)
        obj["apiVersion"], obj["kind"] = patch["apiVersion"], patch["kind"]
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = self._bump()
        meta.setdefault("uid", (current or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
        meta["managedFields"] = [
            {"manager": m, "operation": "Apply"} for m in sorted(set(owners.values()))
        ]
        if current is not None and "status" in current:
            obj["status"] = current["status"]
        self.objects[key] = obj
        self._record("MODIFIED" if current else "ADDED", key, obj)
        self._react(obj, key, created=current is None)
        return copy.deepcopy(obj)

    def _merge(self, key: Key, patch: Obj) -> Obj:
        obj = self.objects.get(key)
        if obj is None:
            raise _Status(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        _merge_into(obj, patch)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._record("MODIFIED", key, obj)
        self._react(obj, key, created=False)
        return copy.deepcopy(obj)

    def delete(self, key: Key) -> Obj:
        obj = self.objects.pop(key, None)
        if obj is None:
            raise _Status(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        self.owners.pop(key, None)
        self._bump()
        self._record("DELETED", key, obj)
        if obj["kind"] == "Deployment":
            for pod in self._pods_of(obj):
                self.delete(self._key(pod, "", "pods"))
        if obj["kind"] == "Namespace":
            for k in [k for k in self.objects if k[2] == obj["metadata"]["name"]]:
                self.delete(k)
        if obj["kind"] == "Pod":
            runtime = self.pods.get((key[2], key[3]))
            if runtime is not None:
                runtime.ended.update(runtime.logs)
        return obj

    # -- what the cluster does by itself ---------------------------------------------------

    def _add_istio(self) -> None:
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}})
        self.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
                  "data": {"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"}}, "istio-operator")  # fmt: skip
        for name in self.crds:
            self.put(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": name},
                }
            )
        self._make_pod("istio-system", "istiod-7c9d8-abcde", {"app": "istiod"}, ["discovery"], sidecar=False,
                       image="docker.io/istio/pilot:1.28.0")  # fmt: skip
        self._make_pod("istio-system", "istio-ingressgateway-5f7b-xyz12",
                       {"app": "istio-ingressgateway", "istio": "ingressgateway"}, ["istio-proxy"], sidecar=False)  # fmt: skip

    def _make_pod(self, namespace: str, name: str, labels: dict[str, str], containers: list[str], *,
                  sidecar: bool, owner: str = "", ready: bool = True, image: str = "fake",
                  service_account: str = "default", env: dict[str, list[Obj]] | None = None) -> Obj:  # fmt: skip
        self.ip += 1
        names = [*containers, "istio-proxy"] if sidecar else containers
        env = env or {}
        specs = [{"name": c, "image": image, **({"env": copy.deepcopy(env[c])} if env.get(c) else {})}
                 for c in names]  # fmt: skip
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "serviceAccountName": service_account,
                "containers": specs,
            },
        }
        if owner:
            pod["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner}]
        key = ("", "pods", namespace, name)
        self.objects[key] = pod
        self._set_status(pod, names, ready)
        pod["metadata"]["resourceVersion"] = self._bump()
        self._record("ADDED", key, pod)
        self.pods.setdefault((namespace, name), FakePod())
        return pod

    def _set_status(self, pod: Obj, containers: list[str], ready: bool) -> None:
        pod["status"] = {
            "phase": "Running",
            "podIP": f"10.0.0.{self.ip}",
            "containerStatuses": [
                {"name": c, "ready": ready or c != "istio-proxy", "state": {"running": {}}}
                for c in containers
            ],
        }

    def _injected(
        self, namespace: str, annotations: dict[str, str], labels: dict[str, str] | None = None
    ) -> bool:
        """Istio's injector: the pod label first, then the deprecated annotation, then the
        namespace's ``istio-injection`` label."""
        explicit = (labels or {}).get(
            "sidecar.istio.io/inject", annotations.get("sidecar.istio.io/inject")
        )
        if explicit is not None:
            return explicit == "true"
        ns = self.objects.get(("", "namespaces", "", namespace))
        return bool(ns) and (ns["metadata"].get("labels") or {}).get("istio-injection") == "enabled"

    def _pods_of(self, deployment: Obj) -> list[Obj]:
        selector = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
        ns = deployment["metadata"]["namespace"]
        return [
            o for o in self.objects.values()
            if o["kind"] == "Pod" and o["metadata"].get("namespace") == ns
            and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
            and o["metadata"].get("ownerReferences")
        ]  # fmt: skip

    def _react(self, obj: Obj, key: Key, created: bool) -> None:
        kind = obj["kind"]
        if kind == "Deployment":
            self._reconcile(obj)
        elif kind == "Pod" and created:
            annotations = obj["metadata"].get("annotations") or {}
            sidecar = annotations.get("sidecar.istio.io/inject") == "true"
            names = [c["name"] for c in obj["spec"]["containers"]]
            if sidecar:
                names.append("istio-proxy")
                obj["spec"]["containers"].append({"name": "istio-proxy", "image": "proxyv2"})
            self.ip += 1
            self._set_status(obj, names, True)
            self.pods.setdefault((key[2], key[3]), FakePod())
            if self.generator_waiting is not None:
                reason, message = self.generator_waiting
                status = obj["status"]["containerStatuses"][0]
                status["state"] = {"waiting": {"reason": reason, "message": message}}
                status["ready"] = False
                return
            if self.data_plane is not None:
                threading.Thread(
                    target=self.data_plane, args=(self, copy.deepcopy(obj)), daemon=True
                ).start()
        elif kind not in ("Pod", "Namespace", "ConfigMap"):
            self.nonce += 1  # istiod pushes to every proxy

    def _reconcile(self, d: Obj) -> None:
        template = d["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:8]
        name, ns = d["metadata"]["name"], d["metadata"]["namespace"]
        want = int(d["spec"].get("replicas", 1))
        pods = self._pods_of(d)
        for pod in pods:
            if pod["metadata"]["labels"].get("pod-template-hash") != digest:
                self.delete(self._key(pod, "", "pods"))
        pods = [
            p
            for p in self._pods_of(d)
            if p["metadata"]["labels"].get("pod-template-hash") == digest
        ]
        pods.sort(
            key=lambda p: int(
                (p["metadata"].get("annotations") or {}).get(
                    "controller.kubernetes.io/pod-deletion-cost", "0"
                )
            )
        )
        while len(pods) > want:
            self.delete(self._key(pods.pop(0), "", "pods"))
        used = {p["metadata"]["name"] for p in pods}
        labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": digest}
        sidecar = self._injected(
            ns,
            template["metadata"].get("annotations") or {},
            template["metadata"].get("labels") or {},
        )
        containers = [c["name"] for c in template["spec"]["containers"]]
        index = 0
        while len(pods) < want:
            pod_name = f"{name}-{digest[:5]}-{index}"
            index += 1
            if pod_name in used:
                continue
            pods.append(self._make_pod(ns, pod_name, labels, containers, sidecar=sidecar,
                                       owner=f"{name}-{digest}", ready=name not in self.never_ready,
                                       service_account=template["spec"].get("serviceAccountName", "default"),
                                       env={c["name"]: c.get("env") or [] for c in template["spec"]["containers"]}))  # fmt: skip
        self.nonce += 1

    # -- pods' runtime ---------------------------------------------------------------------

    def write_log(
        self, namespace: str, pod: str, container: str, line: str, at: float | None = None
    ) -> None:
        """Append a line to a container's log."""
        with self.cond:
            runtime = self.pods.setdefault((namespace, pod), FakePod())
            runtime.logs.setdefault(container, []).append(
                (self.clock.time() if at is None else at, line)
            )
            self.cond.notify_all()

    def end_container(self, namespace: str, pod: str, container: str) -> None:
        """The container exited (a followed log ends)."""
        with self.cond:
            self.pods.setdefault((namespace, pod), FakePod()).ended.add(container)
            self.cond.notify_all()

    def exec(
        self, namespace: str, pod: str, container: str, argv: list[str]
    ) -> tuple[int, str, str]:
        """What running ``argv`` in a container answers."""
        self.execs.append((pod, container, argv))
        if argv[:4] == ["python", "-m", "cluster.kube.loadgen", "knobs"]:
            # the service listens for knobs on its ADMIN_PORT, on 127.0.0.1: another port is
            # refused, as inside a real container
            if argv[4] != self._env_of(namespace, pod, container).get("ADMIN_PORT"):
                return 1, "", f"knobs: 127.0.0.1:{argv[4]}: [Errno 111] Connection refused"
            runtime = self.pods.setdefault((namespace, pod), FakePod())
            runtime.knobs.update(json.loads(argv[5]))
            return 0, json.dumps(runtime.knobs), ""
        if argv[:3] == ["pilot-discovery", "request", "GET"]:
            if argv[3] == "/debug/configz":
                configs = [o for o in self.objects.values()
                           if o.get("apiVersion", "").split("/")[0].endswith("istio.io")]  # fmt: skip
                return 0, json.dumps(configs), ""
            if argv[3] == "/debug/syncz":
                return 0, json.dumps(self._syncz()), ""
        if argv[:4] == ["pilot-agent", "request", "GET", "memory"]:
            allocated = self.proxy_memory(self, namespace, pod) if self.proxy_memory else None
            if allocated is None:
                return 1, "", "Error: dial tcp 127.0.0.1:15000: connect: connection refused"
            return 0, json.dumps(envoy_memory(allocated)), ""
        if argv[:3] == ["pilot-agent", "request", "GET"]:
            return 0, json.dumps({"configs": []}), ""
        return 127, "", f"{argv[0]}: not found"

    def _env_of(self, namespace: str, pod: str, container: str) -> dict[str, str]:
        """The plain ``env`` values of a stored pod's container."""
        for found in self.find("Pod", namespace, pod):
            for c in found["spec"]["containers"]:
                if c["name"] == container:
                    return {e["name"]: str(e.get("value", "")) for e in c.get("env") or []}
        return {}

    def _syncz(self) -> list[Obj]:
        out = []
        for o in self.objects.values():
            if o["kind"] != "Pod" or not any(
                c["name"] == "istio-proxy" for c in o["spec"]["containers"]
            ):
                continue
            name = o["metadata"]["name"]
            if name not in self.stuck_proxies:
                self.acked[name] = self.nonce
            acked = str(self.acked.get(name, 0))
            sent = str(self.nonce)
            out.append({"proxy": f"{name}.{o['metadata']['namespace']}", **{
                f"{t}_{w}": (sent if w == "sent" else acked) for t in ("cluster", "listener", "route", "endpoint")
                for w in ("sent", "acked")}})  # fmt: skip
        return out


def envoy_memory(allocated: int) -> Obj:
    """Envoy's admin ``/memory`` answer (protobuf JSON: every uint64 a string) for a heap with
    ``allocated`` bytes in use."""
    heap = allocated + 2 * 2**20
    return {"allocated": str(allocated), "heap_size": str(heap), "pageheap_unmapped": "0",
            "pageheap_free": str(heap - allocated), "total_thread_cache": "0",
            "total_physical_bytes": str(heap + 2**20)}  # fmt: skip


class _Status(Exception):  # noqa: N818 - it is the API's Status object
    def __init__(
        self, code: int, reason: str, message: str, causes: list[Obj] | None = None
    ) -> None:
        super().__init__(message)
        self.body = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
            "details": {"causes": causes or []},
        }  # fmt: skip
        self.code = code


def _merge_into(target: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_into(target[k], v)
        else:
            target[k] = copy.deepcopy(v)


def _plural(group: str, kind: str) -> str:
    from cluster.kube.manifests import _KINDS

    info = _KINDS.get((group, kind))
    if info is None:
        raise _Status(404, "NotFound", f"the server could not find the requested resource ({kind})")
    return info.plural


def _kind_of(group: str, plural: str) -> str:
    from cluster.kube.manifests import _KINDS

    for (g, kind), info in _KINDS.items():
        if g == group and info.plural == plural:
            return kind
    raise _Status(404, "NotFound", f"the server could not find the requested resource ({plural})")


def _selected(obj: Obj, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k) != v:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def setup(self) -> None:
        super().setup()
        self.kube.connections.add(self.connection)

    def finish(self) -> None:
        self.kube.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing --------------------------------------------------------------------------

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _route(self) -> tuple[str, str, str, str, str, dict[str, list[str]]]:
        """(group, plural, namespace, name, subresource, query) of the request path."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        seg = [s for s in parts.path.split("/") if s]
        if seg[:1] == ["api"]:
            group, rest = "", seg[2:]
        else:
            group, rest = seg[1], seg[3:]
        namespace = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        elif rest[:1] == ["namespaces"]:
            return group, "namespaces", "", rest[1] if len(rest) > 1 else "", "", query
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        return group, plural, namespace, name, sub, query

    def _handle(self, method: str) -> None:
        kube = self.kube
        kube.requests.append((method, self.path))
        if kube.on_request is not None:
            kube.on_request(method, self.path)
        try:
            if self.path.startswith("/version"):
                self._send(200, {"gitVersion": "v1.31.0-fake", "major": "1", "minor": "31"})
                return
            group, plural, ns, name, sub, query = self._route()
            if plural == "services" and sub == "proxy":
                self._service_proxy(ns, name, query)
                return
            if sub == "exec":
                self._exec(ns, name, query)
                return
            if sub == "log":
                self._log(ns, name, query)
                return
            with kube.cond:
                self._objects(method, group, plural, ns, name, sub, query)
        except _Status as exc:
            self._send(exc.code, exc.body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _objects(self, method: str, group: str, plural: str, ns: str, name: str, sub: str,
                 query: dict[str, list[str]]) -> None:  # fmt: skip
        kube = self.kube
        key: Key = (group, plural, ns, name)
        if method == "GET" and not name:
            if query.get("watch") == ["true"]:
                self._watch(group, plural, ns, query)
                return
            kind = _kind_of(group, plural)
            selector = (query.get("labelSelector") or [""])[0]
            items = [
                copy.deepcopy(o) for k, o in sorted(kube.objects.items())
                if k[0] == group and k[1] == plural and (not ns or k[2] == ns) and _selected(o, selector)
            ]  # fmt: skip
            self._send(200, {"kind": f"{kind}List", "apiVersion": "v1", "items": items,
                             "metadata": {"resourceVersion": str(kube.version)}})  # fmt: skip
            return
        if method == "GET":
            obj = kube.objects.get(key)
            if obj is None:
                raise _Status(404, "NotFound", f'{plural} "{name}" not found')
            self._send(200, obj)
            return
        if method == "DELETE":
            self._body()
            self._send(200, kube.delete(key))
            return
        if method == "PATCH":
            body = self._body()
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("application/apply-patch"):
                manager = (query.get("fieldManager") or [""])[0]
                if not manager:
                    raise _Status(400, "BadRequest", "PATCH with apply requires fieldManager")
                if body.get("metadata", {}).get("name") != name:
                    raise _Status(
                        400, "BadRequest", "the name of the object does not match the URL"
                    )
                self._send(200, kube._apply(body, manager, query.get("force") == ["true"], key))
                return
            if sub == "scale":
                replicas = body["spec"]["replicas"]
                self._send(200, kube._merge(key, {"spec": {"replicas": replicas}}))
                return
            self._send(200, kube._merge(key, body))
            return
        raise _Status(405, "MethodNotAllowed", f"{method} is not supported here")

    def _watch(self, group: str, plural: str, ns: str, query: dict[str, list[str]]) -> None:
        kube = self.kube
        timeout = float((query.get("timeoutSeconds") or ["30"])[0])
        since = int((query.get("resourceVersion") or [str(kube.version)])[0] or kube.version)
        selector = (query.get("labelSelector") or [""])[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout
        if not query.get("resourceVersion"):  # "start at most recent": the current state first
            for key, obj in sorted(kube.objects.items()):
                if (
                    key[0] == group
                    and key[1] == plural
                    and (not ns or key[2] == ns)
                    and _selected(obj, selector)
                ):
                    self._chunk(json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n")
        seen = since
        while time.monotonic() < deadline and kube.up:
            for version, kind, key, obj in kube.events:
                if version <= seen or key[0] != group or key[1] != plural or (ns and key[2] != ns):
                    continue
                seen = version
                if _selected(obj, selector):
                    self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            kube.cond.wait(0.2)
        if not kube.up:
            self.close_connection = True
            return
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _log(self, ns: str, name: str, query: dict[str, list[str]]) -> None:
        kube = self.kube
        container = (query.get("container") or [""])[0]
        with kube.cond:
            if ("", "pods", ns, name) not in kube.objects:
                raise _Status(404, "NotFound", f'pods "{name}" not found')
            runtime = kube.pods.setdefault((ns, name), FakePod())
        if query.get("follow") != ["true"]:
            since = float((query.get("sinceSeconds") or ["0"])[0])
            cutoff = kube.clock.time() - since if since else 0.0
            lines = [line for at, line in runtime.logs.get(container, []) if at >= cutoff]
            self._send(200, ("\n".join(lines) + ("\n" if lines else "")).encode(), "text/plain")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = 0
        with kube.cond:
            while kube.up:
                lines = runtime.logs.get(container, [])
                for _, line in lines[sent:]:
                    self._chunk((line + "\n").encode())
                sent = len(lines)
                if container in runtime.ended:
                    break
                kube.cond.wait(0.2)
        if kube.up:
            self._chunk(b"")
        else:
            self.close_connection = True

    def _service_proxy(self, ns: str, name: str, query: dict[str, list[str]]) -> None:
        kube = self.kube
        served = kube.prometheus is not None or kube.prometheus_http is not None
        if not served or (ns, name) != ("istio-system", "prometheus:9090"):
            raise _Status(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
        if kube.prometheus_http is not None:
            path = urlsplit(self.path).path.split("/proxy", 1)[1]
            self._send(200, kube.prometheus_http(path, query))
            return
        assert kube.prometheus is not None
        result = kube.prometheus((query.get("query") or [""])[0])
        self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    # -- exec over WebSocket ---------------------------------------------------------------

    def _exec(self, ns: str, name: str, query: dict[str, list[str]]) -> None:
        kube = self.kube
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        if ("", "pods", ns, name) not in kube.objects:
            raise _Status(404, "NotFound", f'pods "{name}" not found')
        code, out, err = kube.exec(
            ns, name, (query.get("container") or [""])[0], query.get("command") or []
        )
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", "v4.channel.k8s.io")
        self.end_headers()
        if out:
            self._frame(b"\x01" + out.encode())
        if err:
            self._frame(b"\x02" + err.encode())
        status: Obj = {"metadata": {}, "status": "Success"}
        if code:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}  # fmt: skip
        self._frame(b"\x03" + json.dumps(status).encode())
        self._frame(struct.pack("!H", 1000), opcode=0x8)
        self.close_connection = True

    def _frame(self, payload: bytes, opcode: int = 0x2) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([n])
        elif n < 65536:
            header += bytes([126]) + struct.pack("!H", n)
        else:
            header += bytes([127]) + struct.pack("!Q", n)
        self.wfile.write(header + payload)
        self.wfile.flush()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def iter_lines(text: str) -> Iterator[str]:
    """Non-empty lines."""
    return (line for line in text.splitlines() if line.strip())
