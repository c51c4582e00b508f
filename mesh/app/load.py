"""Reading ``behavior.yaml``: decode it into :mod:`mesh.app.model` values and check every field,
each problem reported at its file:line:col (MPY4001 schema, MPY4003 a call to an unknown
service)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mesh.app.model import (
    App,
    AppBehavior,
    AppBehaviorSpec,
    Call,
    EndpointBehavior,
    OnError,
    Parallel,
    ServiceBehavior,
)
from mesh.diagnostics import Diagnostic, DiagnosticError, Level
from mesh.model.common import FrozenMap, SourceMap
from mesh.source.decode import MISSING, Decoder
from mesh.source.load import load_paths
from mesh.source.yaml_nodes import parse_documents

__all__ = ["load_app", "load_behavior"]

Where = tuple[str | int, ...]

MAX_RETRIES = 10
"""More app-level retries than this is a typo, not a policy (each multiplies the load)."""

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
"""An HTTP header (or cookie) name: an RFC 9110 token."""
_CALL_RE = re.compile(
    r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) [a-z0-9]([-a-z0-9]*[a-z0-9])? /\S*$"
)
_ROUTE_RE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S*$")


def _normalize_calls(value: Any) -> Any:
    """Turn the ``- GET svc /path`` shorthand into ``{call: ...}`` mappings before decoding."""
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                out.append({"call": item})
            elif isinstance(item, dict) and "parallel" in item:
                out.append({**item, "parallel": _normalize_calls(item["parallel"])})
            else:
                out.append(item)
        return out
    return value


def _normalize(spec: Any) -> Any:
    if not isinstance(spec, dict):
        return spec
    services = spec.get("services")
    if not isinstance(services, list):
        return spec
    for svc in services:
        if not isinstance(svc, dict):
            continue
        blocks = [svc]
        versions = svc.get("versions")
        if isinstance(versions, dict):
            blocks.extend(v for v in versions.values() if isinstance(v, dict))
        for block in blocks:
            endpoints = block.get("endpoints")
            if isinstance(endpoints, list):
                for e in endpoints:
                    if isinstance(e, dict) and "calls" in e:
                        e["calls"] = _normalize_calls(e["calls"])
    return spec


def _check(behavior: AppBehaviorSpec, decoder: Decoder) -> None:
    names = {s.name for s in behavior.services}
    for i, svc in enumerate(behavior.services):
        base: Where = ("spec", "services", i)
        _check_service(svc, base, decoder)
        blocks: list[tuple[Where, Sequence[EndpointBehavior]]] = [(base, svc.endpoints)]
        blocks += [((*base, "versions", v), vb.endpoints) for v, vb in svc.versions.items()]
        for v, vb in svc.versions.items():
            if vb.concurrency is not None and vb.concurrency < 1:
                decoder.error(
                    (*base, "versions", v, "concurrency"),
                    f"concurrency {vb.concurrency} is not at least 1",
                )
        for path, endpoints in blocks:
            for j, e in enumerate(endpoints):
                epath = (*path, "endpoints", j)
                _check_endpoint(e, epath, decoder)
                for k, step in enumerate(e.calls):
                    calls = step.parallel if isinstance(step, Parallel) else (step,)
                    for m, c in enumerate(calls):
                        cpath = (
                            (*epath, "calls", k)
                            if isinstance(step, Call)
                            else (*epath, "calls", k, "parallel", m)
                        )
                        _check_call(c, cpath, names, decoder)


def _check_headers(names: Sequence[str], where: Where, decoder: Decoder) -> None:
    for n, header in enumerate(names):
        if not _TOKEN.match(header):
            decoder.error((*where, n), f'"{header}" is not an HTTP header name')


def _check_service(svc: ServiceBehavior, base: Where, decoder: Decoder) -> None:
    if not 1 <= svc.port <= 65535:
        decoder.error((*base, "port"), f"port {svc.port} is not in 1..65535")
    if svc.concurrency < 1:
        decoder.error((*base, "concurrency"), f"concurrency {svc.concurrency} is not at least 1")
    _check_headers(svc.forward_headers, (*base, "forwardHeaders"), decoder)
    if not _TOKEN.match(svc.degraded_header):
        decoder.error(
            (*base, "degradedHeader"), f'"{svc.degraded_header}" is not an HTTP header name'
        )
    for n, session in enumerate(svc.sessions):
        where = (*base, "sessions", n)
        if not _TOKEN.match(session.cookie):
            decoder.error((*where, "cookie"), f'"{session.cookie}" is not a cookie name')
        if not _TOKEN.match(session.header):
            decoder.error((*where, "header"), f'"{session.header}" is not an HTTP header name')


def _check_endpoint(e: EndpointBehavior, epath: Where, decoder: Decoder) -> None:
    if not _ROUTE_RE.match(e.route):
        decoder.error(
            (*epath, "route"),
            f'route "{e.route}" is not "METHOD /path"',
            'write e.g. "GET /products/{id}"',
        )
    if not 0.0 <= e.error_rate <= 1.0:
        decoder.error((*epath, "errorRate"), f"errorRate {e.error_rate} is not in [0, 1]")
    if not 200 <= e.response.status <= 599:
        decoder.error(
            (*epath, "response", "status"), f"status {e.response.status} is not in 200..599"
        )
    if e.response.size is not None and not 0 <= e.response.size <= 2**30:
        decoder.error(
            (*epath, "response", "size"), f"size {e.response.size} is not in 0..1073741824 bytes"
        )


def _check_call(c: Call, cpath: Where, names: set[str], decoder: Decoder) -> None:
    if not _CALL_RE.match(c.call):
        decoder.error(
            cpath,
            f'call "{c.call}" is not "METHOD SERVICE /path"',
            'write e.g. "GET product /products/1"',
        )
    elif c.service not in names:
        decoder.report(
            "MPY4003",
            cpath,
            f'call to unknown service "{c.service}"',
            f"declared services: {', '.join(sorted(names))}",
        )
    if c.timeout is not None and c.timeout.seconds <= 0:
        decoder.error((*cpath, "timeout"), f"timeout {c.timeout} is not positive")
    if not 0 <= c.retries <= MAX_RETRIES:
        decoder.error((*cpath, "retries"), f"retries {c.retries} is not in 0..{MAX_RETRIES}")
    if c.error_status is not None:
        if c.on_error is not OnError.PROPAGATE:
            decoder.error(
                (*cpath, "errorStatus"),
                "errorStatus applies to onError: propagate only",
                "a degraded answer is 200; remove errorStatus or use onError: propagate",
            )
        elif not 400 <= c.error_status <= 599:
            decoder.error(
                (*cpath, "errorStatus"), f"errorStatus {c.error_status} is not in 400..599"
            )
    if c.degrade_size and c.on_error is not OnError.DEGRADE:
        decoder.error(
            (*cpath, "degradeSize"),
            "degradeSize applies to onError: degrade only",
            "add onError: degrade, or remove degradeSize",
        )
    if c.forward_headers is not None:
        _check_headers(c.forward_headers, (*cpath, "forwardHeaders"), decoder)


def load_behavior(path: Path) -> AppBehavior:
    """Load and check ``behavior.yaml``; raises DiagnosticError with every problem found."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DiagnosticError(
            [Diagnostic("MPY4002", f"cannot read behaviour file: {exc}", file=file)]
        ) from exc
    docs, diagnostics = parse_documents(text, file)
    if not docs:
        diagnostics.append(
            Diagnostic("MPY4001", "empty behaviour file", file=file, line=1, column=1)
        )
        raise DiagnosticError(diagnostics)
    doc = docs[0]
    source = SourceMap(doc.origin, doc.positions)
    data = doc.data if isinstance(doc.data, dict) else {}
    raw_meta = data.get("metadata")
    meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    name = str(meta.get("name", path.parent.name))
    decoder = Decoder(source, f"AppBehavior {name}", "MPY4001")
    if data.get("kind") != "AppBehavior":
        decoder.error(("kind",), 'expected "kind: AppBehavior"')
    spec = decoder.dataclass(AppBehaviorSpec, _normalize(data.get("spec")), ("spec",))
    if spec is not MISSING:
        _check(spec, decoder)
    diagnostics.extend(decoder.diagnostics)
    if spec is MISSING or any(d.severity is Level.ERROR for d in diagnostics):
        raise DiagnosticError(diagnostics)
    return AppBehavior(
        name=name,
        namespace=str(meta.get("namespace", "default")),
        network=spec.network,
        services=FrozenMap({s.name: s for s in spec.services}),
    )


def load_app(path: Path) -> App:
    """Load an app folder: ``kubernetes/`` manifests and ``behavior.yaml``."""
    behavior = load_behavior(path / "behavior.yaml")
    result = load_paths([path / "kubernetes"], default_namespace=behavior.namespace)
    if not result.ok:
        raise DiagnosticError(result.errors)
    return App(name=path.name, path=path, resources=result.resources, behavior=behavior)
