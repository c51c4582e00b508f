"""The catalog of diagnostic codes, by code: Istio's ``IST`` codes, then meshplay's ``MPY``
codes (documented in docs/diagnostics.md)."""

from __future__ import annotations

from mesh.diagnostics.code import Code
from mesh.diagnostics.istio_codes import ISTIO_CODES
from mesh.diagnostics.meshplay_codes import MESHPLAY_CODES

__all__ = ["CATALOG"]


def _codes(*entries: Code) -> dict[str, Code]:
    table: dict[str, Code] = {}
    for entry in entries:
        if entry.code in table:  # pragma: no cover - guarded by a test
            raise ValueError(f"duplicate diagnostic code {entry.code}")
        table[entry.code] = entry
    return table


CATALOG: dict[str, Code] = _codes(*ISTIO_CODES, *MESHPLAY_CODES)
"""Every code meshplay reports, in catalog order."""
