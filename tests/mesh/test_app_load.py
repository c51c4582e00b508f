"""behavior.yaml's fields of what an app does are checked where they are written.

Each bad value gives one positioned diagnostic (file:line:col, code, the field's path); a fuzz
property over the example app's declaration (which uses every field) shows that any mutation loads
or is rejected with positioned diagnostics, never a traceback.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.app import OnError, load_behavior
from mesh.diagnostics import CATALOG, DiagnosticError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs/examples/apps/newsfeed/behavior.yaml"

BASE = """\
apiVersion: meshplay.dev/v1alpha1
kind: AppBehavior
metadata: {name: t}
spec:
  services:
    - name: a
      endpoints:
        - route: GET /
          calls:
            - call: GET b /x
              FIELD
    - name: b
      endpoints:
        - route: GET /x
"""


def _load(tmp_path: Path, text: str) -> Any:
    file = tmp_path / "behavior.yaml"
    file.write_text(text, encoding="utf-8")
    return load_behavior(file)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(DiagnosticError) as info:
        _load(tmp_path, text)
    (d,) = info.value.diagnostics
    return d.render()


def test_the_example_declares_every_new_field() -> None:
    b = load_behavior(EXAMPLE)
    web = b.services["web"]
    assert web.sessions[0].cookie == "session" and web.sessions[0].header == "end-user"
    assert web.forward_headers == ("end-user",)
    assert b.services["feed"].propagate_trace_headers is False
    calls = web.endpoints[0].all_calls()
    assert calls[0].error_status == 502 and calls[0].timeout is not None
    assert calls[1].on_error is OnError.DEGRADE and calls[1].retries == 1
    assert calls[1].degrade_size == -3000
    assert web.endpoints[0].response.size == 6000


def test_defaults_keep_todays_behaviour(tmp_path: Path) -> None:
    b = _load(tmp_path, BASE.replace("FIELD", "once: false"))
    a = b.services["a"]
    (call,) = a.endpoints[0].all_calls()
    assert (call.timeout, call.retries, call.on_error, call.error_status) == (
        None,
        0,
        OnError.PROPAGATE,
        None,
    )
    assert a.forwarded(call)[0] == "x-request-id" and "authorization" not in a.forwarded(call)
    assert a.endpoints[0].response.status == 200 and a.endpoints[0].response.size is None


@pytest.mark.parametrize(
    ("field", "where", "message"),
    [
        ("timeout: 0s", "11:24", "timeout 0s is not positive"),
        ("timeout: 3", "11:24", "expected a duration string"),
        ("retries: 11", "11:24", "retries 11 is not in 0..10"),
        ("retries: -1", "11:24", "retries -1 is not in 0..10"),
        ("onError: ignore", "11:24", 'invalid value "ignore": expected one of propagate, degrade'),
        ("errorStatus: 200", "11:28", "errorStatus 200 is not in 400..599"),
        ("{onError: degrade, errorStatus: 503}", "11:44", "errorStatus applies to onError"),
        ("degradeSize: -10", "11:28", "degradeSize applies to onError: degrade only"),
        ("forwardHeaders: ['bad header']", "11:32", '"bad header" is not an HTTP header name'),
        ("propagateTraceHeaders: maybe", "11:38", "expected true or false, got string"),
    ],
)
def test_a_bad_call_field_is_reported_at_its_position(
    tmp_path: Path, field: str, where: str, message: str
) -> None:
    if field.startswith("{"):
        text = BASE.replace(
            "            - call: GET b /x\n              FIELD",
            "            - {call: GET b /x, " + field[1:],
        )
    else:
        text = BASE.replace("FIELD", field)
    rendered = _error(tmp_path, text)
    assert rendered.startswith(f"{tmp_path / 'behavior.yaml'}:"), rendered
    assert "error[MPY4001]" in rendered and message in rendered, rendered


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("      sessions: [{cookie: 'a b', header: end-user}]\n", '"a b" is not a cookie name'),
        ("      sessions: [{cookie: s}]\n", 'missing required field "header"'),
        ("      forwardHeaders: ['x:y']\n", '"x:y" is not an HTTP header name'),
        ("      degradedHeader: 'x y'\n", '"x y" is not an HTTP header name'),
        ("      concurrency: 0\n", "concurrency 0 is not at least 1"),
        ("      port: 70000\n", "port 70000 is not in 1..65535"),
    ],
)
def test_a_bad_service_field_is_reported(tmp_path: Path, yaml_text: str, message: str) -> None:
    text = BASE.replace("FIELD", "once: false").replace(
        "    - name: b\n", "    - name: b\n" + yaml_text
    )
    rendered = _error(tmp_path, text)
    assert message in rendered and "spec.services[1]" in rendered, rendered


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ("{status: 100}", "status 100 is not in 200..599"),
        ("{size: -1}", "size -1 is not in 0..1073741824 bytes"),
        ("{bytes: 3}", 'unknown field "bytes"'),
    ],
)
def test_a_bad_response_is_reported(tmp_path: Path, response: str, message: str) -> None:
    text = BASE.replace("FIELD", "once: false").replace(
        "        - route: GET /x\n", f"        - route: GET /x\n          response: {response}\n"
    )
    rendered = _error(tmp_path, text)
    assert message in rendered and "endpoints[0].response" in rendered, rendered


# -- fuzz: any mutation of the example loads or is rejected with positioned diagnostics --------

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), st.text(max_size=10),
    st.sampled_from(["degrade", "propagate", "1s", "0ms", "end-user", "session", "GET web /", "-3000"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


DOC = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
PATHS = [p for p in _paths(DOC) if p]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    doc = copy.deepcopy(DOC)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue
    return yaml.safe_dump(doc, sort_keys=False)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(text=mutated())
def test_any_mutation_of_the_example_loads_or_is_rejected_with_positions(
    tmp_path: Path, text: str
) -> None:
    file = tmp_path / "behavior.yaml"
    file.write_text(text, encoding="utf-8")
    try:
        load_behavior(file)
    except DiagnosticError as exc:
        _assert_positioned(exc, file)


def _assert_positioned(exc: DiagnosticError, file: Path) -> None:
    assert exc.diagnostics
    for d in exc.diagnostics:
        assert d.code in CATALOG, d
        assert d.render().startswith(str(file) + ":"), d.render()
