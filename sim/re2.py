"""Envoy's ``safe_regex`` (Google RE2) patterns run on Python's ``re``.

RE2 and Python's ``re`` agree on the everyday syntax, and differ where it matters here:

* RE2 refuses look-around (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), back-references (``\\1``,
  ``(?P=name)``), atomic groups and possessive quantifiers: Envoy rejects the config
  (:class:`RegexError` with ``rejected=True``);
* ``\\d``, ``\\w``, ``\\s``, ``\\b`` are ASCII-only in RE2: compiled with ``re.ASCII``;
* RE2 spells the end of text ``\\z`` (Python ``\\Z``), names groups ``(?<name>...)`` as well as
  ``(?P<name>...)``, and has POSIX classes (``[[:alpha:]]``): translated;
* ``a{,2}`` is a literal in RE2 but ``a{0,2}`` in Python: escaped;
* Unicode classes (``\\pL``), ``\\Q...\\E``, ``\\C`` and the ungreedy flag ``(?U)`` have no
  faithful ``re`` equivalent here: refused as not modelled (``rejected=False``).

Substitutions (``regex_rewrite``): RE2 writes groups as ``\\0``..``\\9`` and a backslash as
``\\\\``; :func:`substitution` turns that into a replacement function for ``re.sub``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

__all__ = ["RegexError", "compile_re2", "substitution"]

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}


class RegexError(ValueError):
    """A pattern RE2 (Envoy) rejects (``rejected``), or one meshplay cannot run faithfully."""

    def __init__(self, message: str, *, rejected: bool) -> None:
        super().__init__(message)
        self.rejected = rejected


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise RegexError("trailing \\ in the pattern", rejected=True)
            e = pattern[i + 1]
            if e.isdigit() and not in_class and e != "0":
                raise RegexError(f"invalid escape sequence: \\{e} (RE2 has no back-references)",
                                 rejected=True)  # fmt: skip
            if e in "pP":
                raise RegexError(f"Unicode class \\{e} is not modelled", rejected=False)
            if e in "QEC":
                raise RegexError(f"\\{e} is not modelled", rejected=False)
            if e == "z":
                out.append("\\Z")
            elif e == "Z":
                raise RegexError("invalid escape sequence: \\Z", rejected=True)
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                negated = name.startswith("^")
                chars = _POSIX.get(name.lstrip("^"))
                if chars is None or negated:
                    raise RegexError(f"character class [:{name}:] is not modelled", rejected=False)
                out.append(chars)
                i = end + 2
                continue
            if c == "[":
                out.append("\\[")
                i += 1
                continue
            if c == "]" and out and out[-1] not in ("[", "[^"):
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ] is a literal
                out.append("\\]")
                i += 1
            continue
        if c == "(" and pattern.startswith("(?", i):
            rest = pattern[i + 2 : i + 4]
            if rest[:1] in ("=", "!") or rest in ("<=", "<!"):
                raise RegexError(f"invalid perl operator: (?{rest[:1] if rest[:1] in '=!' else rest}",
                                 rejected=True)  # fmt: skip
            if rest[:1] == ">" or rest.startswith("P="):
                raise RegexError(f"invalid perl operator: (?{rest[:2]}", rejected=True)
            if rest[:1] == "<":
                out.append("(?P<")
                i += 3
                continue
            flags = re.match(r"\(\?([imsU-]+)[:)]", pattern[i:])
            if flags and "U" in flags.group(1):
                raise RegexError("the ungreedy flag (?U) is not modelled", rejected=False)
        if c == "{" and re.match(r"\{,\d*\}", pattern[i:]):
            out.append("\\{")
            i += 1
            continue
        if c in "*+?}" and i + 1 < n and pattern[i + 1] == "+":
            raise RegexError(f"bad repetition operator: {c}+", rejected=True)
        out.append(c)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_re2(pattern: str) -> re.Pattern[str]:
    """``pattern`` as RE2 reads it, compiled for ``re`` (raises :class:`RegexError`)."""
    translated = _translate(pattern)
    try:
        return re.compile(translated, re.ASCII)
    except re.error as exc:
        raise RegexError(f"invalid regex {pattern!r}: {exc}", rejected=True) from exc


def substitution(text: str) -> Callable[[re.Match[str]], str]:
    """An RE2 rewrite string (``\\1`` groups, ``\\\\`` a backslash) as an ``re.sub`` function."""
    parts: list[str | int] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and (text[i + 1].isdigit() or text[i + 1] == "\\"):
            if text[i + 1] == "\\":
                literal.append("\\")
            else:
                parts.append("".join(literal))
                literal = []
                parts.append(int(text[i + 1]))
            i += 2
            continue
        literal.append(c)
        i += 1
    parts.append("".join(literal))

    def replace(m: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else (m.group(p) or "") for p in parts)

    return replace
