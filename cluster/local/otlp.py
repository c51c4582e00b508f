"""OTLP/HTTP trace exports read into Zipkin v2 spans (what the collector stores and serves).

Envoy's OpenTelemetry tracer, configured with an ``http_service`` (Istio's ``opentelemetry``
provider with ``http``), POSTs each batch to ``/v1/traces`` as a protobuf
``opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest``
(``Content-Type: application/x-protobuf``); other OTLP/HTTP clients may send the same message as
OTLP/JSON (``application/json``, what ``meshplay traces --export otlp`` writes). Both are read
here into the Zipkin v2 shape the collector keeps, so ``meshplay traces``, the TUI and Zipkin's
read API see one kind of span whichever tracer the proxies ran:

* ``traceId``/``id``/``parentId``: the span's ids in hex; ``name``; ``kind`` from the
  ``SpanKind`` (``SERVER`` 2, ``CLIENT`` 3, ``PRODUCER`` 4, ``CONSUMER`` 5);
* ``timestamp``/``duration``: microseconds from the start and end nanoseconds;
* ``localEndpoint.serviceName``: the resource's ``service.name`` (Envoy: the tracer's
  ``service_name``, the proxy's node cluster);
* ``tags``: the span's attributes as strings, and ``error: "true"`` when the status is ERROR.

The protobuf reader decodes only the wire format of these messages (field numbers from
``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``); unknown fields are
skipped, as protobuf readers do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["OtlpError", "spans_from_otlp_json", "spans_from_otlp_protobuf"]

KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS_ERROR = 2


class OtlpError(ValueError):
    """A body that is not an OTLP trace export."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise OtlpError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise OtlpError("varint too long")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of every field of one message: an int for varint and fixed
    fields, bytes for length-delimited ones."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = int.from_bytes(buf[i : i + 8], "little"), i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = int.from_bytes(buf[i : i + 4], "little"), i + 4
        else:
            raise OtlpError(f"wire type {wire} of field {number}")
        if i > n:
            raise OtlpError(f"field {number} runs past the end")
        yield number, value


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise OtlpError("a length-delimited field was expected")
    return value


def _int(value: int | bytes) -> int:
    if isinstance(value, bytes):
        raise OtlpError("a numeric field was expected")
    return value


def _any_value(buf: bytes) -> str:
    """``AnyValue`` as text: string 1, bool 2, int 3, double 4 (arrays, lists, bytes: "")."""
    text = ""
    for number, value in _fields(buf):
        if number == 1:
            text = _bytes(value).decode("utf-8", "replace")
        elif number == 2:
            text = "true" if _int(value) else "false"
        elif number == 3:
            n = _int(value)
            text = str(n - (1 << 64) if n >= 1 << 63 else n)
        elif number == 4:
            text = repr(struct.unpack("<d", _int(value).to_bytes(8, "little"))[0])
    return text


def _attribute(buf: bytes) -> tuple[str, str]:
    """``KeyValue``: key 1, value 2."""
    key = text = ""
    for number, value in _fields(buf):
        if number == 1:
            key = _bytes(value).decode("utf-8", "replace")
        elif number == 2:
            text = _any_value(_bytes(value))
    return key, text


def _span(buf: bytes, service: str) -> dict[str, Any]:
    """``Span``: trace_id 1, span_id 2, parent_span_id 4, name 5, kind 6, start 7, end 8,
    attributes 9, status 15 (code 3)."""
    trace_id = span_id = parent = b""
    name = ""
    kind = start = end = status = 0
    tags: dict[str, str] = {}
    for number, value in _fields(buf):
        if number == 1:
            trace_id = _bytes(value)
        elif number == 2:
            span_id = _bytes(value)
        elif number == 4:
            parent = _bytes(value)
        elif number == 5:
            name = _bytes(value).decode("utf-8", "replace")
        elif number == 6:
            kind = _int(value)
        elif number == 7:
            start = _int(value)
        elif number == 8:
            end = _int(value)
        elif number == 9:
            key, text = _attribute(_bytes(value))
            tags[key] = text
        elif number == 15:
            status = next((_int(v) for n, v in _fields(_bytes(value)) if n == 3), 0)
    return _zipkin(
        trace_id=trace_id.hex(),
        span_id=span_id.hex(),
        parent=parent.hex(),
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        service=service,
        tags=tags,
        error=status == STATUS_ERROR,
    )


def spans_from_otlp_protobuf(body: bytes) -> list[dict[str, Any]]:
    """The spans of a protobuf ``ExportTraceServiceRequest`` (resource_spans 1: resource 1
    (attributes 1), scope_spans 2 (spans 2)), as Zipkin v2 JSON objects."""
    out: list[dict[str, Any]] = []
    for number, resource_spans in _fields(body):
        if number != 1:
            continue
        service = ""
        scopes: list[bytes] = []
        for field, value in _fields(_bytes(resource_spans)):
            if field == 1:
                for attr_field, attr in _fields(_bytes(value)):
                    if attr_field == 1:
                        key, text = _attribute(_bytes(attr))
                        service = text if key == "service.name" else service
            elif field == 2:
                scopes.append(_bytes(value))
        for scope in scopes:
            out.extend(_span(_bytes(v), service) for n, v in _fields(scope) if n == 2)
    return out


def _json_value(value: Mapping[str, Any]) -> str:
    for key in ("stringValue", "intValue", "doubleValue"):
        if key in value:
            return str(value[key])
    if "boolValue" in value:
        return "true" if value["boolValue"] else "false"
    return ""


def _json_enum(value: Any, names: Mapping[str, int]) -> int:
    if isinstance(value, str):
        return names.get(value, 0)
    return int(value or 0)


_KIND_NAMES = {"SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4,
               "SPAN_KIND_CONSUMER": 5}  # fmt: skip
_STATUS_NAMES = {"STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def spans_from_otlp_json(doc: Any) -> list[dict[str, Any]]:
    """The spans of an OTLP/JSON ``ExportTraceServiceRequest`` (``resourceSpans``), as Zipkin
    v2 JSON objects (ids are hex in OTLP/JSON, times decimal strings of nanoseconds)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("resourceSpans", []), list):
        raise OtlpError("an object with resourceSpans was expected")
    out: list[dict[str, Any]] = []
    try:
        for rs in doc.get("resourceSpans", []):
            attributes = (rs.get("resource") or {}).get("attributes") or []
            service = next(
                (_json_value(a.get("value") or {}) for a in attributes
                 if a.get("key") == "service.name"),
                "",
            )  # fmt: skip
            for scope in rs.get("scopeSpans") or []:
                for s in scope.get("spans") or []:
                    tags = {
                        str(a.get("key", "")): _json_value(a.get("value") or {})
                        for a in s.get("attributes") or []
                    }
                    status = _json_enum((s.get("status") or {}).get("code", 0), _STATUS_NAMES)
                    out.append(
                        _zipkin(
                            trace_id=str(s.get("traceId", "")),
                            span_id=str(s.get("spanId", "")),
                            parent=str(s.get("parentSpanId", "") or ""),
                            name=str(s.get("name", "")),
                            kind=_json_enum(s.get("kind", 0), _KIND_NAMES),
                            start_ns=int(s.get("startTimeUnixNano", 0) or 0),
                            end_ns=int(s.get("endTimeUnixNano", 0) or 0),
                            service=service,
                            tags=tags,
                            error=status == STATUS_ERROR,
                        )
                    )
    except (AttributeError, TypeError, ValueError) as exc:
        raise OtlpError(f"not an OTLP/JSON trace export: {exc}") from exc
    return out


def _zipkin(
    *,
    trace_id: str,
    span_id: str,
    parent: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    service: str,
    tags: dict[str, str],
    error: bool,
) -> dict[str, Any]:
    if error:
        tags.setdefault("error", "true")
    span: dict[str, Any] = {
        "traceId": trace_id,
        "id": span_id,
        "name": name,
        "timestamp": start_ns // 1000,
        "duration": max(0, end_ns - start_ns) // 1000,
        "localEndpoint": {"serviceName": service},
        "tags": tags,
    }
    if kind in KINDS:
        span["kind"] = KINDS[kind]
    if parent and parent.strip("0"):
        span["parentId"] = parent
    return span
