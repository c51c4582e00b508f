"""docs/translation.md's "what gives MPY2xxx" table stays complete.

Issue 13's acceptance: the translation doc lists what is modelled and what is refused as not
modelled. The refusals live in code (the ``UNMODELLED`` field sets of the Istio model classes,
the loader's not-modelled kinds and API groups, the MPY2xxx codes of the diagnostics registry);
this test fails when one of them is missing from the table, so a new refusal cannot go
undocumented.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import mesh.model.destination_rule
import mesh.model.envoy_filter
import mesh.model.gateway
import mesh.model.security
import mesh.model.virtual_service
from mesh.diagnostics import CATALOG
from mesh.source.load import NOT_MODELLED_GROUPS, NOT_MODELLED_KINDS

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "translation.md"
MODULES = (
    mesh.model.destination_rule,
    mesh.model.envoy_filter,
    mesh.model.gateway,
    mesh.model.security,
    mesh.model.virtual_service,
)


def _table() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Limits (known, not silent): what gives MPY2xxx")
    return text[start : text.index("\n## ", start + 1)]


def _unmodelled_fields() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for module in MODULES:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            fields = cls.__dict__.get("UNMODELLED")
            if fields and cls.__module__ == module.__name__:
                found[name] = set(fields)
    return found


def test_every_unmodelled_istio_field_is_in_the_table() -> None:
    table = _table()
    fields = _unmodelled_fields()
    assert fields, "no UNMODELLED sets found: the model moved, fix MODULES"
    missing = {
        f"{cls}.{field}"
        for cls, names in fields.items()
        for field in names
        if f"`{field}`" not in table and not re.search(rf"\.{field}`", table)
    }
    assert not missing, f"docs/translation.md lacks these MPY2001 fields: {sorted(missing)}"


def test_every_not_modelled_kind_and_group_is_in_the_table() -> None:
    table = _table()
    missing = [k for k in sorted(NOT_MODELLED_KINDS) if k not in table]
    missing += [g for g in sorted(NOT_MODELLED_GROUPS) if f"`{g}`" not in table]
    assert not missing, f"docs/translation.md lacks these MPY2005 kinds/groups: {missing}"


def test_every_mpy2_code_is_in_the_table() -> None:
    table = _table()
    codes = sorted(c for c in CATALOG if c.startswith("MPY2"))
    assert codes, "no MPY2xxx codes in the registry"
    assert [c for c in codes if f"| {c} |" not in table] == []
