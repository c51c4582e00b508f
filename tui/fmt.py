"""Number and verdict formatting shared by the views (rich Text, colours by meaning)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rich.text import Text

from mesh.checks import CheckResult, Verdict

__all__ = ["flags", "fold", "ms", "pct", "rps", "split_bar", "value", "verdict"]

VERSION_COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "red")


def pct(x: float) -> str:
    """``0.995`` -> ``99.5%``; NaN -> ``-``."""
    return "-" if math.isnan(x) else f"{x * 100:.1f}%"


def ms(x: float) -> str:
    """Milliseconds with one decimal; NaN -> ``-``."""
    return "-" if math.isnan(x) else f"{x:.1f}"


def rps(x: float) -> str:
    """Requests per second with one decimal; NaN -> ``-``."""
    return "-" if math.isnan(x) else f"{x:.1f}"


def value(x: float) -> str:
    """A measured value, four significant digits."""
    return "-" if math.isnan(x) else f"{x:.4g}"


def flags(items: Sequence[tuple[str, int]]) -> Text:
    """``UO:12 URX:3`` in red, or a dim ``-``."""
    if not items:
        return Text("-", style="dim")
    return Text(" ".join(f"{f}:{n}" for f, n in items), style="bold red")


def verdict(v: Verdict) -> Text:
    """✔ pass (green), ✘ fail (red), ? no data (yellow)."""
    if v is Verdict.PASS:
        return Text("✔ pass", style="bold green")
    if v is Verdict.FAIL:
        return Text("✘ fail", style="bold red")
    return Text("? no data", style="yellow")


def check_line(c: CheckResult) -> Text:
    """One expectation as a line: verdict, what, measured."""
    line = verdict(c.verdict)
    line.append(f"  {c.expectation.describe()}  ")
    line.append(f"= {value(c.value)}", style="bold")
    line.append(f" (n={c.samples})", style="dim")
    return line


def split_bar(service: str, versions: Sequence[tuple[str, int]], width: int) -> Text:
    """``product  ██████████▒▒▒▒  v1 71%  v2 29%``: one bar per destination, one colour per version."""
    total = sum(n for _, n in versions) or 1
    text = Text(f"{service:<14.14} ")
    used = 0
    for i, (_version, n) in enumerate(versions):
        cells = round(n / total * width) if i < len(versions) - 1 else width - used
        cells = max(0, min(cells, width - used))
        used += cells
        text.append("█" * cells, style=VERSION_COLOURS[i % len(VERSION_COLOURS)])
    text.append(" " * (width - used))
    for i, (version, n) in enumerate(versions):
        text.append(f" {version} ", style=f"bold {VERSION_COLOURS[i % len(VERSION_COLOURS)]}")
        text.append(f"{n / total:.0%}")
    return text


_PIECES = re.compile(r"[^|/.,:(>]+[|/.,:(>]*|[|/.,:(>]+")
"""A long name's pieces, each ending at a separator: ``outbound|``, ``8080|``, ``product.``,
``share(``, ``api-gateway->``."""


def fold(text: str, width: int, indent: str = "  ") -> list[str]:
    """``text`` as lines of at most ``width`` cells, broken at spaces; a name longer than a line
    (``outbound|8080|v1|product.shop.svc.cluster.local``) is broken after its separators
    (``|``, ``.``, ``/``, ``,``, ``:``, ``(``, ``>``), never inside a word unless one piece alone is wider than a
    line. The first line keeps ``text``'s leading spaces; the others start with ``indent``."""
    if width <= len(indent) + 4 or len(text) <= width:
        return [text]
    body = text.lstrip(" ")
    lines: list[str] = []
    line = text[: len(text) - len(body)]
    empty = True

    def put(piece: str, gap: str) -> None:
        nonlocal line, empty
        if len(line) + (0 if empty else len(gap)) + len(piece) <= width:
            line += piece if empty else gap + piece
            empty = False
            return
        if not empty:
            lines.append(line)
            line = indent
        while len(line) + len(piece) > width:  # one piece wider than a line
            room = width - len(line)
            lines.append(line + piece[:room])
            line, piece = indent, piece[room:]
        line += piece
        empty = False

    for word in body.split(" "):
        if not word:
            continue
        if len(word) + len(indent) <= width:
            put(word, " ")
            continue
        for i, piece in enumerate(_PIECES.findall(word)):
            put(piece, " " if i == 0 else "")
    if not empty:
        lines.append(line)
    return lines
