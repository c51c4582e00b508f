"""Fast construction of :class:`mesh.records.RequestRecord` on the simulator's hot path.

A simulated request yields two records per hop, so building them is a noticeable share of the
run time. ``RequestRecord`` is a frozen, slotted, keyword-only dataclass; its generated
``__init__`` binds 29 keyword arguments and sets each through ``object.__setattr__``. This module
fills the same slots directly through their descriptors (straight-line code generated once
from the field list), which is several times faster and
yields an identical (equal, hashable, frozen) record. If the record's fields ever change, the
field list check fails and the plain keyword constructor is used instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from mesh.records import RequestRecord

__all__ = ["FIELDS", "make_record", "record_maker"]

R = TypeVar("R")

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


def record_maker(cls: type[R], fields: tuple[str, ...]) -> Callable[..., R]:
    """A maker of ``cls`` instances from field values given positionally in ``fields`` order
    (the last one may be left out: ``"http"``).

    The fast, unrolled maker when ``cls`` is a slotted dataclass whose fields are exactly
    ``fields`` in that order and that has no ``__post_init__`` (filling the slots directly would
    skip it); otherwise the plain keyword constructor, which maps values by name (a reordered or
    a new defaulted field stays correct; a renamed or removed one fails loudly).
    """
    declared = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    fast = declared == fields and hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    return _unrolled(cls, fields) if fast else _plain(cls, fields)


def _plain(cls: type[R], fields: tuple[str, ...]) -> Callable[..., R]:
    def construct(*values: Any) -> R:
        if len(values) == len(fields) - 1:
            values = (*values, "http")
        return cls(**dict(zip(fields, values, strict=True)))

    return construct


def _unrolled(cls: type[R], fields: tuple[str, ...]) -> Callable[..., R]:
    """The maker as straight-line code: one slot setter call per field, no loop."""
    n = len(fields)
    params = ", ".join(f"v{i}" for i in range(n - 1)) + f', v{n - 1}="http"'
    defaults = ", ".join(f"_s{i}=_s{i}" for i in range(n))
    body = "".join(f"    _s{i}(r, v{i})\n" for i in range(n))
    source = (
        f"def make({params}, *, _new=_new, _cls=_cls, {defaults}):\n"
        f"    r = _new(_cls)\n{body}    return r\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, name in enumerate(fields):
        namespace[f"_s{i}"] = getattr(cls, name).__set__
    exec(source, namespace)  # generated from field names checked against the dataclass
    fn: Callable[..., R] = namespace["make"]
    return fn


make_record: Callable[..., RequestRecord] = record_maker(RequestRecord, FIELDS)
"""A RequestRecord from its field values in :data:`FIELDS` order (positional; the protocol
may be left out)."""
