"""Fast construction of :class:`mesh.records.RequestRecord` on the simulator's hot path.

A simulated request yields two records per hop, so building them is a noticeable share of the
run time. ``RequestRecord`` is a frozen, slotted, keyword-only dataclass; its generated
``__init__`` binds 29 keyword arguments and sets each through ``object.__setattr__``. This module
fills the same slots directly through their descriptors (straight-line code generated once
from the field list), which is several times faster and
yields an identical (equal, hashable, frozen) record. If the record's fields ever change, the
field list check fails and the plain constructor is used instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from mesh.records import RequestRecord

__all__ = ["FIELDS", "make_record"]

FIELDS = (
    "start_time",
    "duration_ms",
    "reporter",
    "source_workload",
    "source_namespace",
    "source_principal",
    "destination_service",
    "destination_workload",
    "destination_namespace",
    "destination_version",
    "source_app",
    "source_version",
    "destination_app",
    "destination_principal",
    "route_name",
    "upstream_cluster",
    "upstream_host",
    "method",
    "path",
    "authority",
    "response_code",
    "response_flags",
    "attempts",
    "bytes_received",
    "bytes_sent",
    "request_id",
    "trace_id",
    "connection_security_policy",
    "response_code_details",
    "request_protocol",
)
"""RequestRecord's fields in declaration order: ``make_record`` takes its values in this order
(the last one, ``request_protocol``, may be left out: ``"http"``)."""

_SLOTS_MATCH = tuple(f.name for f in dataclasses.fields(RequestRecord)) == FIELDS and hasattr(
    RequestRecord, "__slots__"
)


def _plain(*values: Any) -> RequestRecord:
    if len(values) == len(FIELDS) - 1:
        values = (*values, "http")
    return RequestRecord(**dict(zip(FIELDS, values, strict=True)))


def _unrolled() -> Callable[..., RequestRecord]:
    """``make_record`` as straight-line code: one slot setter call per field, no loop."""
    params = ", ".join(f"v{i}" for i in range(len(FIELDS) - 1)) + f', v{len(FIELDS) - 1}="http"'
    defaults = ", ".join(f"_s{i}=_s{i}" for i in range(len(FIELDS)))
    body = "".join(f"    _s{i}(r, v{i})\n" for i in range(len(FIELDS)))
    source = (
        f"def make_record({params}, *, _new=_new, _cls=_cls, {defaults}):\n"
        f"    r = _new(_cls)\n{body}    return r\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": RequestRecord}
    for i, name in enumerate(FIELDS):
        namespace[f"_s{i}"] = getattr(RequestRecord, name).__set__
    exec(source, namespace)  # generated from the constant FIELDS above
    fn: Callable[..., RequestRecord] = namespace["make_record"]
    return fn


make_record: Callable[..., RequestRecord] = _unrolled() if _SLOTS_MATCH else _plain
"""A RequestRecord from its field values in :data:`FIELDS` order (positional; the protocol
may be left out)."""
