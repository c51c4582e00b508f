"""The loader is total: whatever YAML-shaped (or not) input it gets, it returns resources and
diagnostics and never raises. Properties checked with hypothesis over arbitrary documents,
documents that look like real resources with mutated fields, and arbitrary text/bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from mesh.diagnostics import CATALOG
from mesh.model import RESOURCE_KINDS
from mesh.source import load_paths, load_text

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "-", "*", "1s", "10ms", "v1", "ISTIO_MUTUAL", "ROUND_ROBIN", "/api"]),
)
keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        ["spec", "hosts", "http", "route", "destination", "host", "subset", "weight", "match",
         "uri", "prefix", "exact", "headers", "timeout", "retries", "attempts", "subsets",
         "labels", "trafficPolicy", "tls", "mode", "selector", "ports", "port", "name",
         "metadata", "namespace", "template", "containers", "rules", "from", "to", "when"]
    ),
)  # fmt: skip
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def resource_like(draw: st.DrawFn) -> dict[str, Any]:
    cls = draw(st.sampled_from(RESOURCE_KINDS))
    version = draw(st.sampled_from([*cls.API_VERSIONS, "v9"]))
    api_version = f"{cls.API_GROUP}/{version}" if cls.API_GROUP else version
    doc: dict[str, Any] = {
        "apiVersion": draw(st.sampled_from([api_version, api_version, "bogus/v1"])),
        "kind": cls.KIND,
        "metadata": draw(
            st.one_of(
                st.fixed_dictionaries({"name": st.sampled_from(["ok", "Bad_Name", ""])}),
                json_like,
            )
        ),
    }
    if draw(st.booleans()):
        doc["spec"] = draw(json_like)
    return doc


def _assert_total(text: str) -> None:
    result = load_text(text, "input.yaml")
    for d in result.diagnostics:
        assert d.code in CATALOG
        assert d.render().startswith(("input.yaml", "error", "warning", "info"))
    for r in result.resources:
        assert r.name  # every loaded resource has its identity


@given(st.lists(json_like, max_size=3))
def test_arbitrary_yaml_documents_never_raise(docs: list[Any]) -> None:
    """Any YAML-shaped data: lists, scalars, nested junk -> diagnostics, never a traceback."""
    _assert_total(yaml.safe_dump_all(docs))


@given(st.lists(resource_like(), min_size=1, max_size=3))
def test_resource_shaped_documents_never_raise(docs: list[dict[str, Any]]) -> None:
    """Real kinds with random specs exercise every decoder path (enums, durations, unions...)."""
    _assert_total(yaml.safe_dump_all(docs))


@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Arbitrary text, including control characters YAML rejects."""
    _assert_total(text)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_from_a_file_never_raise(tmp_path_factory: Any, data: bytes) -> None:
    """Binary junk in a file is reported as unreadable, never decoded into garbage."""
    path = Path(tmp_path_factory.mktemp("junk")) / "junk.yaml"
    path.write_bytes(data)
    result = load_paths([path])
    for d in result.diagnostics:
        assert d.code in CATALOG
