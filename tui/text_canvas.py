"""A sparse character canvas: text and box-drawing lines written cell by cell, rendered as Rich
``Text`` lines. Lines crossing or meeting in a cell are joined into one box-drawing character
(``├``, ``┼``, ...) from the directions they take there.
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Span, Text

__all__ = ["LINE_CHARS", "Canvas", "E", "N", "S", "W"]

# N, E, S, W bits of a line cell; the character joins them.
N, E, S, W = 1, 2, 4, 8
LINE_CHARS = {
    0: " ",
    N: "│", S: "│", N | S: "│", E: "─", W: "─", E | W: "─",
    S | E: "┌", S | W: "┐", N | E: "└", N | W: "┘",
    N | S | E: "├", N | S | W: "┤", E | W | S: "┬", E | W | N: "┴", N | E | S | W: "┼",
}  # fmt: skip


class Canvas:
    """Cells written so far, row by row: a character, or line directions to join, and a style.
    Sparse, so a drawing costs what is drawn, not its area."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.text: list[dict[int, str]] = [{} for _ in range(height)]
        self.bits: list[dict[int, int]] = [{} for _ in range(height)]
        self.styles: list[dict[int, str]] = [{} for _ in range(height)]

    def free(self, x: int, y: int) -> bool:
        """Whether no character was written at the cell (lines may be there)."""
        return 0 <= y < self.height and x not in self.text[y]

    def line(self, x: int, y: int, bits: int, style: str) -> None:
        if 0 <= x < self.width and 0 <= y < self.height and x not in self.text[y]:
            row = self.bits[y]
            row[x] = row.get(x, 0) | bits
            self.styles[y][x] = style

    def hline(self, y: int, x1: int, x2: int, style: str) -> None:
        lo, hi = min(x1, x2), max(x1, x2)
        for x in range(lo, hi + 1):
            bits = (W if x > lo else 0) | (E if x < hi else 0)
            self.line(x, y, bits or (E | W), style)

    def vline(self, x: int, y1: int, y2: int, style: str) -> None:
        lo, hi = min(y1, y2), max(y1, y2)
        for y in range(lo, hi + 1):
            self.line(x, y, (N if y > lo else 0) | (S if y < hi else 0), style)

    def put(self, x: int, y: int, text: str, style: str) -> None:
        """Write ``text`` from ``(x, y)``; a double-width character (🔒) takes two cells, the
        second left empty."""
        if not 0 <= y < self.height:
            return
        chars, bits, styles = self.text[y], self.bits[y], self.styles[y]
        cx = x
        for ch in text:
            wide = ord(ch) >= 0x2E80 and cell_len(ch) == 2  # box drawing is narrow
            for part in (ch, "") if wide else (ch,):
                if 0 <= cx < self.width:
                    chars[cx] = part
                    bits.pop(cx, None)
                    styles[cx] = style
                cx += 1

    def render(self) -> list[Text]:
        out = []
        for y in range(self.height):
            chars, bits, styles = self.text[y], self.bits[y], self.styles[y]
            plain: list[str] = []
            spans: list[Span] = []
            pos = 0  # characters in plain so far
            last = -1
            for x in sorted(chars.keys() | bits.keys()):
                if x > last + 1:
                    plain.append(" " * (x - last - 1))
                    pos += x - last - 1
                ch = chars.get(x)
                if ch is None:
                    ch = LINE_CHARS.get(bits[x], "┼")
                plain.append(ch)
                style = styles.get(x, "")
                if style:
                    if spans and spans[-1].end == pos and spans[-1].style == style:
                        spans[-1] = Span(spans[-1].start, pos + len(ch), style)
                    else:
                        spans.append(Span(pos, pos + len(ch), style))
                pos += len(ch)
                last = x
            out.append(Text("".join(plain), spans=spans, no_wrap=True, overflow="crop", end=""))
        return out
