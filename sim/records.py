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
    "request_headers",
    "source_cluster",
    "destination_cluster",
)
"""RequestRecord's fields in declaration order: ``make_record`` takes its values in this order
(the last four, ``request_protocol``, ``request_headers``, ``source_cluster`` and
``destination_cluster``, may be left out: ``"http"``, ``()``, ``""``, ``""``)."""

RECORD_DEFAULTS: tuple[Any, ...] = ("http", (), "", "")
"""Values of the trailing fields of :data:`FIELDS` a caller may leave out."""


def record_maker(
    cls: type[R], fields: tuple[str, ...], defaults: tuple[Any, ...] = ("http",)
) -> Callable[..., R]:
    """A maker of ``cls`` instances from field values given positionally in ``fields`` order
    (the last ``len(defaults)`` may be left out: they take these values).

    The fast, unrolled maker when ``cls`` is a slotted dataclass whose fields are exactly
    ``fields`` in that order and that has no ``__post_init__`` (filling the slots directly would
    skip it); otherwise the plain keyword constructor, which maps values by name (a reordered or
    a new defaulted field stays correct; a renamed or removed one fails loudly).
    """
    declared = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    fast = declared == fields and hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")
    return _unrolled(cls, fields, defaults) if fast else _plain(cls, fields, defaults)


def _plain(cls: type[R], fields: tuple[str, ...], defaults: tuple[Any, ...]) -> Callable[..., R]:
    def construct(*values: Any) -> R:
        missing = len(fields) - len(values)
        if 0 < missing <= len(defaults):
            values = (*values, *defaults[len(defaults) - missing :])
        return cls(**dict(zip(fields, values, strict=True)))

    return construct


def _unrolled(cls: type[R], fields: tuple[str, ...], defaults: tuple[Any, ...]) -> Callable[..., R]:
    """The maker as straight-line code: one slot setter call per field, no loop."""
    n = len(fields)
    first = n - len(defaults)
    params = ", ".join(
        [f"v{i}" for i in range(first)] + [f"v{i}=_d{i - first}" for i in range(first, n)]
    )
    setters = ", ".join(f"_s{i}=_s{i}" for i in range(n))
    body = "".join(f"    _s{i}(r, v{i})\n" for i in range(n))
    source = (
        f"def make({params}, *, _new=_new, _cls=_cls, {setters}):\n"
        f"    r = _new(_cls)\n{body}    return r\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    namespace.update({f"_d{i}": value for i, value in enumerate(defaults)})
    for i, name in enumerate(fields):
        namespace[f"_s{i}"] = getattr(cls, name).__set__
    exec(source, namespace)  # generated from field names checked against the dataclass
    fn: Callable[..., R] = namespace["make"]
    return fn


make_record: Callable[..., RequestRecord] = record_maker(RequestRecord, FIELDS, RECORD_DEFAULTS)
"""A RequestRecord from its field values in :data:`FIELDS` order (positional; the protocol
and the logged headers may be left out)."""
