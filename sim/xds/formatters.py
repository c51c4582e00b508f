"""Envoy's header value formatters (``%DOWNSTREAM_REMOTE_ADDRESS%``, ``%REQ(x-user)%``...).

A ``request_headers_to_add``/``response_headers_to_add`` value may embed command operators
between ``%`` signs; Envoy substitutes them per request and, when the result is empty, adds no
header at all (unless ``keep_empty_value``). ``%%`` is a literal ``%``.

Modelled operators: ``DOWNSTREAM_REMOTE_ADDRESS`` (and ``_WITHOUT_PORT``, ``DOWNSTREAM_REMOTE_PORT``,
the ``DOWNSTREAM_DIRECT_`` forms), ``DOWNSTREAM_LOCAL_ADDRESS`` (and ``_WITHOUT_PORT``,
``DOWNSTREAM_LOCAL_PORT``), ``REQ(name)``/``REQ(name?alternative)`` with an optional ``:N`` length
limit, ``PROTOCOL`` and ``UPSTREAM_METADATA([...])``, which is empty where no upstream host (or
no metadata on it) is known, as in Envoy's own ``router_check_tool``. Any other operator raises
:class:`FormatterError` (``not modelled``); a malformed one is an error Envoy rejects too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sim.matchers import HeaderValues, header_list

__all__ = [
    "FormatContext",
    "FormatterError",
    "apply_header_ops",
    "compile_format",
    "format_value",
    "has_operators",
]

_OPERATOR = re.compile(r"%([A-Z_0-9]+)(?:\(([^)]*)\))?(?::(\d+))?%")
_ADDRESS = frozenset(
    {
        "DOWNSTREAM_REMOTE_ADDRESS",
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_REMOTE_PORT",
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS",
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_DIRECT_REMOTE_PORT",
        "DOWNSTREAM_LOCAL_ADDRESS",
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        "DOWNSTREAM_LOCAL_PORT",
    }
)
_MODELLED = _ADDRESS | {"REQ", "PROTOCOL", "UPSTREAM_METADATA"}


class FormatterError(ValueError):
    """A header value with an operator meshplay does not model (or that is malformed)."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class FormatContext:
    """What the operators read: the request headers (pseudo headers included) and addresses."""

    headers: Mapping[str, str]
    remote: str = "127.0.0.1:0"
    local: str = "127.0.0.1:0"
    protocol: str = "HTTP/1.1"


Piece = str | tuple[str, str, int]


def has_operators(value: str) -> bool:
    """Whether ``value`` needs formatting at all (most values are plain text)."""
    return "%" in value


@functools.lru_cache(maxsize=1024)
def compile_format(value: str) -> tuple[Piece, ...]:
    """Split a header value into literal text and (operator, argument, max length) pieces."""
    pieces: list[Piece] = []
    pos = 0
    text: list[str] = []
    while pos < len(value):
        if value.startswith("%%", pos):
            text.append("%")
            pos += 2
            continue
        if value[pos] != "%":
            text.append(value[pos])
            pos += 1
            continue
        m = _OPERATOR.match(value, pos)
        if m is None:
            raise FormatterError(
                f"invalid header value format {value!r}: unterminated or malformed %...% at "
                f"offset {pos}",
                rejected=True,
            )
        name, arg, limit = m.group(1), m.group(2) or "", int(m.group(3) or 0)
        if name not in _MODELLED:
            raise FormatterError(f"header formatter %{name}% is not modelled", rejected=False)
        if name == "REQ" and not arg:
            raise FormatterError("%REQ()% needs a header name", rejected=True)
        if text:
            pieces.append("".join(text))
            text = []
        pieces.append((name, arg, limit))
        pos = m.end()
    if text:
        pieces.append("".join(text))
    return tuple(pieces)


def _host(address: str) -> str:
    if address.startswith("["):
        return address[1 : address.index("]")]
    return address.rsplit(":", 1)[0]


def _operator(name: str, arg: str, ctx: FormatContext) -> str:
    if name == "REQ":
        for header in arg.split("?"):
            value = ctx.headers.get(header.strip().lower())
            if value is not None:
                return value
        return ""
    if name == "PROTOCOL":
        return ctx.protocol
    if name == "UPSTREAM_METADATA":
        return ""
    address = ctx.local if "LOCAL" in name else ctx.remote
    if name.endswith("_WITHOUT_PORT"):
        return _host(address)
    if name.endswith("_PORT"):
        return address.rsplit(":", 1)[1]
    return address


def format_value(value: str, ctx: FormatContext) -> str:
    """``value`` with every operator substituted for this request."""
    if not has_operators(value):
        return value
    out: list[str] = []
    for piece in compile_format(value):
        if isinstance(piece, str):
            out.append(piece)
            continue
        name, arg, limit = piece
        result = _operator(name, arg, ctx)
        out.append(result[:limit] if limit else result)
    return "".join(out)


def apply_header_ops(
    headers: Mapping[str, str],
    remove: tuple[str, ...],
    add: tuple[tuple[str, str, str, bool], ...],
    ctx: FormatContext | None = None,
) -> dict[str, str]:
    """Envoy's header mutations at one level (a copy): removals first, then additions by their
    append action; an appended value joins the existing one with a comma (the same header as a
    list); a value that formats to "" is skipped unless ``keep_empty_value``."""
    out = dict(headers)
    for name in remove:
        out.pop(name, None)
    for name, raw, action, keep_empty in add:
        value = format_value(raw, ctx or FormatContext(out)) if has_operators(raw) else raw
        if not value and not keep_empty:
            continue
        present = name in out
        if action == "APPEND_IF_EXISTS_OR_ADD":
            if present:  # a second header line: Envoy's matchers see each value
                old = out[name]
                parts = old.values if isinstance(old, HeaderValues) else (old,)
                out[name] = header_list((*parts, value))
            else:
                out[name] = value
        elif action == "ADD_IF_ABSENT":
            if not present:
                out[name] = value
        elif action == "OVERWRITE_IF_EXISTS":
            if present:
                out[name] = value
        else:
            out[name] = value
    return out
