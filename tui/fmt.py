"""Number and verdict formatting shared by the views (rich Text, colours by meaning)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from mesh.checks import CheckResult, Verdict

__all__ = ["flags", "ms", "pct", "rps", "split_bar", "value", "verdict"]

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
