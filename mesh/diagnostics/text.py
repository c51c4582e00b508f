"""Wording helpers for diagnostics: a "did you mean" hint and a field path as users write it."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence

__all__ = ["did_you_mean", "format_path"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``did you mean "x"?`` for the closest candidate, or an empty string."""
    options = sorted(set(candidates))
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in options}
        if word.lower() in lowered:
            close = [lowered[word.lower()]]
    return f'did you mean "{close[0]}"?' if close else ""


_PLAIN_KEY = re.compile(r"^[A-Za-z_@][A-Za-z0-9_-]*$")


def format_path(path: Sequence[str | int]) -> str:
    """``("spec", "http", 0, "route")`` -> ``spec.http[0].route``; a key with dots or slashes
    (an annotation or label name) is bracketed: ``metadata.annotations["sidecar.istio.io/inject"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.match(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out
