"""The Kubernetes API as the runner uses it, over the official ``kubernetes`` Python client.

Generic REST on the client's transport (its kubeconfig loading, authentication, TLS): server-side
apply (``PATCH`` with ``application/apply-patch+yaml``, field manager ``meshplay``), get, list,
delete, watch, a container's log (whole or followed) and exec (the client's WebSocket stream).
Every failure becomes a :class:`KubeError` that says what happened in a person's words: the API's
own message for a rejected object (422 with its causes, 409 with the conflicting field owners),
"does not answer" for a server that went away.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream

from cluster.kube.manifests import FIELD_MANAGER, Manifest, kind_info, object_path
from mesh.runner import RunnerError

__all__ = ["KubeApi", "KubeError", "NoClusterError", "current_context"]

_config: Any = config
"""The client's kubeconfig loader (untyped)."""
_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds of one API request."""


class KubeError(RunnerError):
    """The API refused or failed a request (``status`` 0: it did not answer)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class NoClusterError(KubeError):
    """No kubeconfig, no such context, or no API behind it."""


def _kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG", "")
    return env.split(os.pathsep)[0] if env else str(Path.home() / ".kube" / "config")


def current_context(kubeconfig: str | None = None) -> str:
    """The kubeconfig's current context ("" when there is no kubeconfig)."""
    path = kubeconfig or _kubeconfig()
    if not Path(path).is_file():
        return ""
    try:
        _, current = _config.list_kube_config_contexts(config_file=path)
    except (ConfigException, OSError, ValueError):
        return ""
    return str(current.get("name", "")) if current else ""


def _status_message(exc: ApiException) -> tuple[str, str]:
    """(message, reason) of a Kubernetes Status body, causes included."""
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        return (str(exc.body or exc.reason or "").strip(), str(exc.reason or ""))
    if not isinstance(body, dict):
        return (str(body), str(exc.reason or ""))
    message = str(body.get("message") or exc.reason or "")
    causes = (body.get("details") or {}).get("causes") or []
    extra = [
        f"{c.get('field', '')}: {c.get('message', '')}".strip(": ")
        for c in causes
        if isinstance(c, dict) and c.get("message") and str(c.get("message")) not in message
    ]
    if extra:
        message += " (" + "; ".join(extra) + ")"
    return message, str(body.get("reason") or exc.reason or "")


def _why(exc: BaseException) -> str:
    """The root cause of a transport error in a few words (``Connection refused``)."""
    reason = getattr(exc, "reason", None)
    text = str(reason if reason is not None else exc)
    for marker in ("Failed to establish a new connection: ", "] "):
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    return text.strip("'\" )") or type(exc).__name__


class KubeApi:
    """One cluster, reached through a kubeconfig context."""

    def __init__(self, api_client: Any, context: str = "") -> None:
        self.client: Any = api_client
        self.context = context
        self.server = str(api_client.configuration.host)

    @classmethod
    def connect(cls, context: str = "", kubeconfig: str | None = None) -> KubeApi:
        """A client for ``context`` (default: the current one); :class:`NoClusterError` when
        there is no kubeconfig or no such context (nothing is contacted yet)."""
        path = kubeconfig or _kubeconfig()
        if not Path(path).is_file():
            raise NoClusterError(f"no kubeconfig at {path} (set KUBECONFIG or create a cluster)")
        name = context or current_context(path)
        if not name:
            raise NoClusterError(f"the kubeconfig {path} has no current context (pass --context)")
        try:
            api_client = _config.new_client_from_config(config_file=path, context=name)
        except (ConfigException, OSError, ValueError, TypeError) as exc:
            raise NoClusterError(f"context {name!r} in {path}: {exc}") from exc
        return cls(api_client, name)

    # -- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: Any = _TIMEOUT,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            m, url, hdrs, data, _ = self.client.param_serialize(
                method,
                path,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            return self.client.call_api(
                m, url, header_params=hdrs, body=data, _request_timeout=timeout
            )
        except ApiException as exc:
            message, reason = _status_message(exc)
            raise KubeError(message, int(exc.status or 0), reason) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(
                f"the Kubernetes API at {self.server} does not answer ({_why(exc)})"
            ) from exc

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A JSON request; the decoded answer (KubeError on a status >= 300)."""
        resp = self._send(method, path, **kwargs)
        try:
            data = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"the Kubernetes API at {self.server} went away mid-answer") from exc
        text = data.decode("utf-8", errors="replace") if data else ""
        if not 200 <= resp.status < 300:
            status = ApiException(status=resp.status, reason=resp.reason, body=text)
            message, reason = _status_message(status)
            raise KubeError(message or f"HTTP {resp.status}", resp.status, reason)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    # -- objects ---------------------------------------------------------------------------

    def apply(self, manifest: Manifest, *, force: bool = False) -> dict[str, Any]:
        """Server-side apply with field manager ``meshplay``; the object as stored."""
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        try:
            out = self.request(
                "PATCH",
                manifest.path(),
                query=query,
                body=manifest.body,
                content_type="application/apply-patch+yaml",
            )
        except KubeError as exc:
            where = f" ({manifest.source})" if manifest.source else ""
            raise KubeError(f"apply {manifest.ref}{where}: {exc}", exc.status, exc.reason) from exc
        return out if isinstance(out, dict) else {}

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        path = object_path(api_version, kind_info(api_version, kind), namespace, name)
        try:
            out = self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return out if isinstance(out, dict) else None

    def list(
        self, api_version: str, kind: str, namespace: str = "", label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """The objects of a kind (in ``namespace``, or everywhere) and the list's
        resourceVersion."""
        path = object_path(api_version, kind_info(api_version, kind), namespace)
        query = [("labelSelector", label_selector)] if label_selector else []
        out = self.request("GET", path, query=query)
        items = out.get("items") or [] if isinstance(out, dict) else []
        version = str((out or {}).get("metadata", {}).get("resourceVersion", ""))
        return [i for i in items if isinstance(i, dict)], version

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (background propagation); False when it was already gone."""
        path = object_path(api_version, kind_info(api_version, kind), namespace, name)
        try:
            self.request(
                "DELETE",
                path,
                body={
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                },
            )
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        *,
        label_selector: str = "",
        resource_version: str = "",
        timeout_s: float = 30.0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events ``(ADDED|MODIFIED|DELETED, object)`` until the server ends the watch
        (after ``timeout_s``)."""
        path = object_path(api_version, kind_info(api_version, kind), namespace)
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("timeoutSeconds", max(1, int(timeout_s))),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if resource_version:
            query.append(("resourceVersion", resource_version))
        resp = self._send("GET", path, query=query, timeout=(5.0, timeout_s + 10.0))
        for line in self._lines(resp):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            obj = event.get("object")
            if event.get("type") == "ERROR":
                message = obj.get("message", "") if isinstance(obj, dict) else ""
                raise KubeError(f"watch {kind}: {message}", int((obj or {}).get("code", 0)))
            if isinstance(obj, dict):
                yield str(event.get("type", "")), obj

    def _lines(self, resp: Any) -> Iterator[str]:
        pending = b""
        try:
            for chunk in resp.response.stream(4096, decode_content=True):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield line.decode("utf-8", errors="replace")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"the Kubernetes API at {self.server} went away mid-stream") from exc
        finally:
            resp.response.release_conn()
        if pending.strip():
            yield pending.decode("utf-8", errors="replace")

    # -- pods ------------------------------------------------------------------------------

    def pod_log(
        self, namespace: str, pod: str, container: str, *, since_seconds: int | None = None
    ) -> str:
        """A container's log so far ("" for a pod that is gone)."""
        query: list[tuple[str, Any]] = [("container", container)]
        if since_seconds is not None:
            query.append(("sinceSeconds", max(1, since_seconds)))
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        try:
            resp = self._send("GET", path, query=query, content_type="text/plain")
            data = resp.read()
        except KubeError as exc:
            if exc.status in (400, 404):  # gone, or its container has not started
                return ""
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(f"the Kubernetes API at {self.server} went away mid-answer") from exc
        text: str = data.decode("utf-8", errors="replace") if data else ""
        if resp.status in (400, 404):  # gone, or its container has not started
            return ""
        if not 200 <= resp.status < 300:
            raise KubeError(
                f"log of {namespace}/{pod} ({container}): HTTP {resp.status} {text[:200]}",
                resp.status,
            )
        return text

    def follow_log(
        self, namespace: str, pod: str, container: str, timeout_s: float
    ) -> Iterator[str]:
        """A container's log lines as they are written, until the container ends."""
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        query = [("container", container), ("follow", "true")]
        resp = self._send(
            "GET", path, query=query, content_type="text/plain", timeout=(5.0, timeout_s)
        )
        if not 200 <= resp.status < 300:
            text = resp.read().decode("utf-8", errors="replace")
            raise KubeError(f"log of {namespace}/{pod}: {text}", resp.status)
        yield from self._lines(resp)

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], timeout_s: float = 30.0
    ) -> tuple[int, str, str]:
        """Run ``argv`` in a container; (exit code, stdout, stderr)."""
        core = client.CoreV1Api(self.client)
        try:
            ws = stream(
                core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                container=container,
                command=list(argv),
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            ws.run_forever(timeout=timeout_s)
            out, err = ws.read_stdout(), ws.read_stderr()
            code = ws.returncode
            ws.close()
        except ApiException as exc:
            message, reason = _status_message(exc)
            raise KubeError(
                f"exec in {namespace}/{pod} ({container}): {message}", int(exc.status or 0), reason
            ) from exc
        except (OSError, urllib3.exceptions.HTTPError, ValueError) as exc:
            raise KubeError(f"exec in {namespace}/{pod} ({container}): {exc}") from exc
        return (code if code is not None else 1), str(out or ""), str(err or "")

    def version(self) -> str:
        """The server's ``gitVersion``."""
        out = self.request("GET", "/version")
        return str((out or {}).get("gitVersion", "")) if isinstance(out, dict) else ""

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()


def selector_text(labels: Mapping[str, str]) -> str:
    """``a=b,c=d``"""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
