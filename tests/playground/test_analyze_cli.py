"""``meshplay analyze`` as an istioctl user expects it: lessons, app folders and folders of
lessons analyzed as what they are; istioctl analyze's exit codes (0, 79 issues at or above
--failure-threshold, default error; 65 unreadable input) and thresholds (prints Info by
default); istioctl's own message lines (``-o log``/``-o istioctl``) beside meshplay's
compiler-style ones; and the expected codes on broken variants of lesson 01."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from playground.cli import main

ROOT = Path(__file__).resolve().parents[2]
LESSON = ROOT / "lessons" / "01-request-routing"


@pytest.fixture
def lesson_copy(tmp_path: Path) -> Path:
    """A private copy of lesson 01 beside a copy of the apps it needs."""
    shutil.copytree(ROOT / "lessons" / "apps", tmp_path / "apps")
    target = tmp_path / "01-request-routing"
    shutil.copytree(LESSON, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def test_first_lesson_analyzes_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0; nothing to show at istioctl's default output threshold (info), so the success
    line (stderr, as istioctl) is printed; the same with a higher threshold."""
    assert main(["analyze", str(LESSON)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"\u2714 No validation issues found when analyzing {LESSON}." in captured.err
    assert main(["analyze", str(LESSON), "--output-threshold", "warning"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"\u2714 No validation issues found when analyzing {LESSON}." in captured.err


LESSONS = sorted(p for p in (ROOT / "lessons").iterdir() if (p / "lesson.yaml").exists())
APP_INFOS: set[tuple[str, str]] = set()
"""What istioctl reports on the app itself in every lesson: nothing (postgres and redis opt out
of injection with the ``sidecar.istio.io/inject`` label, not the deprecated annotation)."""


_DESTINATION_RULE_ALL = frozenset(
    {("IST0173", "destination-rule-all.yaml"), ("MPY3006", "destination-rule-all.yaml")}
)
_FORTIO = frozenset({("IST0135", "30-fortio.yaml")})
ISTIO_SAMPLES_FINDINGS: dict[str, frozenset[tuple[str, str]]] = {
    "bookinfo-01-routing": _DESTINATION_RULE_ALL | {("IST0140", "bookinfo-gateway.yaml")},
    "bookinfo-02-shifting": _DESTINATION_RULE_ALL,
    "bookinfo-03-faults": _DESTINATION_RULE_ALL,
    "bookinfo-04-timeouts": _DESTINATION_RULE_ALL,
    "bookinfo-05-breakers": _FORTIO,
    "bookinfo-06-mirroring": _FORTIO,
}
"""What Istio's own YAML gets in the Bookinfo track, as istioctl reports it: Bookinfo's
``destination-rule-all.yaml`` names ratings subsets v2-mysql and v2-mysql-vm that no pod
carries (IST0173, an Error in istioctl too); with Bookinfo's gateway, the productpage
VirtualService's subset has no effect on the gateway's requests (IST0140, a Warning); Istio's
fortio sample keeps the deprecated
``sidecar.istio.io/statsInclusionPrefixes`` annotation (IST0135, Info). MPY3006 is meshplay's
extension of IST0173 for the subsets ratings v2 and details v2, whose ``version: v2`` label
exists only on reviews' pods (istioctl does not look at which Service the pods are behind): a
Warning, so Istio's YAML fails analysis only where istioctl fails it too."""


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_every_lesson_analyzes_as_istioctl_would(
    lesson: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each lesson (its app, then the state after every step) gets exactly the findings
    istioctl analyze would report on it: none, apart from the app's own infos and what
    Istio's own sample YAML gets."""
    main(["analyze", str(lesson), "-o", "json", "--output-threshold", "info"])
    found = {(d["code"], Path(d["file"]).name) for d in json.loads(capsys.readouterr().out)}
    assert found == APP_INFOS | ISTIO_SAMPLES_FINDINGS.get(lesson.name, frozenset())


BROKEN = [
    # (file, old, new, code, exit code: 79 for an Error, 0 for a Warning or Info, as istioctl)
    ("istio/virtual-service-all-v1.yaml", "subset: v1", "subset: v3", "IST0101", 79),
    ("istio/virtual-service-all-v1.yaml", "host: product\n        subset", "host: prodcut\n        subset", "IST0101", 79),
    ("istio/destination-rule.yaml", "version: v2", "version: v9", "IST0173", 79),
    ("istio/virtual-service-by-uri.yaml", "prefix: /products/", "prefx: /products/", "IST0106", 79),
    ("istio/virtual-service-by-uri.yaml", "  - name: item-pages\n    match:\n    - uri:\n        prefix: /products/\n",
     "  - name: item-pages\n", "IST0130", 0),
    ("istio/destination-rule.yaml", "  host: product\n", "  host: product\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBN}\n", "IST0106", 79),
    ("istio/virtual-service-all-v1.yaml", "host: product\n        subset: v1", "host: product\n        port: {number: 9080}\n        subset: v1", "IST0101", 79),
    ("istio/destination-rule.yaml", "  host: product\n", "  host: product\n  trafficPolicy:\n    tls: {mode: SIMPLE}\n", "IST0128", 0),
    ("istio/virtual-service-by-uri.yaml", "  - name: catalog\n", "  - name: catalog\n    match:\n    - uri: {prefix: /products/new}\n", "IST0131", 0),
    ("../apps/ecommerce/kubernetes/23-product.yaml", "  - name: http\n    port: 8080", "  - name: web\n    port: 8080", "IST0118", 0),
    ("../apps/ecommerce/kubernetes/00-namespace.yaml", "istio-injection: enabled", "istio-injection: enabled\n    istio.io/rev: canary", "IST0123", 0),
    ("lesson.yaml", "between: [0.35, 0.65]", "between: [0.65, 0.35]", "MPY4004", 79),
    ("lesson.yaml", "apply: [istio/virtual-service-by-uri.yaml]", "apply: [istio/virtual-service-by-url.yaml]", "MPY4002", 79),
    ("lesson.yaml", "edge: api-gateway->product, version: v1}\n        at_least", "edge: api-gateway->products, version: v1}\n        at_least", "MPY4003", 79),
    ("istio/destination-rule.yaml", "  host: product\n", "  host: product\n  trafficPolicy: [\n", "MPY1001", 65),
]  # fmt: skip


@pytest.mark.parametrize(("file", "old", "new", "code", "rc"), BROKEN)
def test_broken_variant_reports_expected_code(
    lesson_copy: Path,
    capsys: pytest.CaptureFixture[str],
    file: str,
    old: str,
    new: str,
    code: str,
    rc: int,
) -> None:
    """Each mistake a learner makes in lesson 01 is caught with its code, at its file."""
    _edit(lesson_copy / file, old, new)
    assert main(["analyze", str(lesson_copy), "-o", "json"]) == rc
    found = json.loads(capsys.readouterr().out)
    hits = [d for d in found if d["code"] == code]
    assert hits, f"expected {code}, got {[d['code'] for d in found]}"
    assert all(d["line"] > 0 for d in hits)
    assert any(Path(d["file"]).name == Path(file).name for d in hits)


def test_failure_threshold_decides_which_level_exits_79(lesson_copy: Path) -> None:
    """istioctl's default fails on Error only: an unreachable rule (a Warning) exits 0 unless
    --failure-threshold warning (or info) asks for it."""
    _edit(
        lesson_copy / "istio/virtual-service-by-uri.yaml",
        "  - name: item-pages\n    match:\n    - uri:\n        prefix: /products/\n",
        "  - name: item-pages\n",
    )
    assert main(["analyze", str(lesson_copy)]) == 0
    assert main(["analyze", str(lesson_copy), "--failure-threshold", "warning"]) == 79
    assert main(["analyze", str(lesson_copy), "--failure-threshold", "info"]) == 79
    assert main(["analyze", str(lesson_copy), "--failure-threshold", "error"]) == 0


def test_plain_yaml_against_an_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """YAML files are checked against an app's manifests with --app, like a live cluster."""
    vs = tmp_path / "vs.yaml"
    vs.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {name: p, namespace: shop}\n"
        "spec:\n  hosts: [product]\n  http:\n  - route:\n    - destination: {host: product, subset: v1}\n"
    )
    app = str(ROOT / "lessons" / "apps" / "ecommerce")
    assert main(["analyze", str(vs), "--app", app]) == 79
    out = capsys.readouterr().out
    assert f"{vs}:8:" in out
    assert (
        'error[IST0101] VirtualService shop/p: Referenced host+subset in destinationrule not found: "product+v1"'
        in out
    )


def test_stdin_input(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``-`` reads stdin, as ``kubectl apply -f -`` does."""
    import io

    monkeypatch.setattr(
        "sys.stdin",
        io.StringIO(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{name: http, port: 80}]\n  selector: {app: a}\n"
        ),
    )
    assert main(["analyze", "-"]) == 0  # MPY3002: the Service selects no pods (a warning)
    assert "<stdin>:6:13: warning[MPY3002]" in capsys.readouterr().out


# -- PATHs analyzed as what they are -----------------------------------------------------------

APP = ROOT / "lessons" / "apps" / "ecommerce"


def _found(capsys: pytest.CaptureFixture[str]) -> set[tuple[str, str]]:
    return {(d["code"], Path(d["file"]).name) for d in json.loads(capsys.readouterr().out)}


def test_an_app_folder_analyzes_as_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    """behavior.yaml is the app's behaviour file, not a manifest (no MPY1003 AppBehavior); the
    manifests and the shop's own Gateway + VirtualService (istio/) are analyzed together, so
    the VirtualService's gateway and destination resolve: only the app's infos remain."""
    assert main(["analyze", str(APP), "-o", "json"]) == 0
    assert _found(capsys) == APP_INFOS


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ecommerce"
    shutil.copytree(APP, target)
    return target


@pytest.mark.parametrize(
    ("file", "old", "new", "code"),
    [
        ("istio/shop-gateway.yaml", "host: frontend", "host: frontnd", "IST0101"),
        ("istio/shop-gateway.yaml", "  - shop-gateway\n", "  - shop-gatewy\n", "IST0101"),
        ("behavior.yaml", "route: GET /static/{file}", "route: GET static", "MPY4001"),
        ("kubernetes/23-product.yaml", "  - name: http\n    port: 8080", "  - name: http\n    port: http", "MPY1010"),
    ],
)  # fmt: skip
def test_an_app_folder_reports_its_own_files(
    app_copy: Path, capsys: pytest.CaptureFixture[str], file: str, old: str, new: str, code: str
) -> None:
    """A mistake in the app's Istio config, its behaviour file or its manifests is reported at
    that file, and exits 79 (an Error)."""
    _edit(app_copy / file, old, new)
    assert main(["analyze", str(app_copy), "-o", "json"]) == 79
    assert (code, Path(file).name) in _found(capsys)


def test_a_folder_of_lessons_analyzes_each_lesson_and_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``meshplay analyze lessons``: every lesson (with its steps) and every app, never a
    lesson.yaml or behavior.yaml read as a manifest."""
    # 79: istioctl too reports IST0173 (an Error) on Bookinfo's destination-rule-all.yaml
    assert main(["analyze", str(ROOT / "lessons"), "-o", "json"]) == 79
    assert _found(capsys) == APP_INFOS.union(*ISTIO_SAMPLES_FINDINGS.values())


def test_a_folder_of_lessons_reports_a_broken_lesson_and_loose_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In a folder of lessons, a broken lesson is reported at its own file; YAML beside the
    lessons is analyzed as plain kubectl input."""
    course = tmp_path / "course"
    shutil.copytree(ROOT / "lessons" / "apps", course / "apps")
    shutil.copytree(LESSON, course / "01-request-routing")
    _edit(
        course / "01-request-routing/istio/virtual-service-all-v1.yaml", "subset: v1", "subset: v3"
    )
    (course / "extra.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: shop}\n"
        "spec:\n  selector: {app: nothing}\n  servers:\n"
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n"
    )
    assert main(["analyze", str(course), "-o", "json"]) == 79
    found = _found(capsys)
    assert ("IST0101", "virtual-service-all-v1.yaml") in found
    assert ("IST0101", "extra.yaml") in found  # the Gateway selects no pod: IST0101 selector
    assert not {code for code, _ in found} & {"MPY1002", "MPY1003"}


# -- istioctl's exit codes -------------------------------------------------------------------

_VS = (
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
    "metadata: {name: p, namespace: shop}\n"
    "spec:\n  hosts: [product]\n  http:\n  - route:\n    - destination: {host: product, subset: v1}\n"
)
_WARNING = (  # a Service selecting no pod: MPY3002, a Warning
    "apiVersion: v1\nkind: Service\nmetadata: {name: lonely, namespace: shop}\n"
    "spec:\n  ports: [{name: http, port: 80}]\n  selector: {app: lonely}\n"
)
_BAD_YAML = "kind: VirtualService\nspec: [\n"
_BINARY = "\x00\x01binary"


@pytest.mark.parametrize(
    ("files", "extra", "rc"),
    [
        ({}, [], 0),
        ({"vs.yaml": _VS}, [], 79),
        ({"svc.yaml": _WARNING}, [], 0),
        ({"svc.yaml": _WARNING}, ["--failure-threshold", "warning"], 79),
        ({"bad.yaml": _BAD_YAML}, [], 65),
        ({"bin.yaml": _BINARY}, [], 65),
        ({"bad.yaml": _BAD_YAML, "svc.yaml": _WARNING}, [], 65),
        # an issue at the threshold wins over unreadable input, as in istioctl
        ({"bad.yaml": _BAD_YAML, "vs.yaml": _VS}, [], 79),
        ({"bad.yaml": _BAD_YAML, "svc.yaml": _WARNING}, ["--failure-threshold", "warning"], 79),
    ],
)
def test_exit_codes_are_istioctl_analyzes(
    tmp_path: Path, files: dict[str, str], extra: list[str], rc: int
) -> None:
    """0 nothing at or above --failure-threshold (default error); 79 analyzers found issues at
    or above it; 65 some input could not be parsed and nothing reached the threshold."""
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))
    app = str(ROOT / "lessons" / "apps" / "ecommerce")
    assert main(["analyze", *(paths or [str(LESSON)]), "--app", app, *extra]) == rc


def test_a_missing_path_is_unreadable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATH that does not exist is input that cannot be read: 65, and stderr names it."""
    assert main(["analyze", str(tmp_path / "nope.yaml")]) == 65
    err = capsys.readouterr().err
    assert "Error: Some files couldn't be parsed" in err and "not found:" in err


# -- output ----------------------------------------------------------------------------------


def test_istioctl_message_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o log`` (istioctl's name) and ``-o istioctl`` print istioctl's lines: Level [CODE]
    (Kind ns/name file:line) message; a cluster-scoped kind has no namespace; a message about
    no resource shows only the file."""
    vs = tmp_path / "vs.yaml"
    vs.write_text(_VS)
    ns = tmp_path / "ns.yaml"
    ns.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: legacy}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(_BAD_YAML)
    app = str(ROOT / "lessons" / "apps" / "ecommerce")
    argv = ["analyze", str(vs), str(ns), str(bad), "--app", app]
    assert main([*argv, "-o", "log"]) == 79
    lines = capsys.readouterr().out.splitlines()
    assert (
        f"Error [IST0101] (VirtualService shop/p {vs}:8) Referenced host+subset in "
        'destinationrule not found: "product+v1"'
    ) in lines
    assert any(line.startswith(f"Info [IST0102] (Namespace legacy {ns}:3) ") for line in lines)
    assert any(line.startswith(f"Error [MPY1001] ({bad}:3) invalid YAML") for line in lines)
    assert main([*argv, "-o", "istioctl"]) == 79
    assert capsys.readouterr().out.splitlines() == lines


def test_json_and_yaml_carry_istioctls_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Machine output keeps meshplay's fields and adds istioctl's (origin, reference,
    documentationUrl), so a script written against either keeps working."""
    import yaml

    vs = tmp_path / "vs.yaml"
    vs.write_text(_VS)
    app = str(ROOT / "lessons" / "apps" / "ecommerce")
    assert main(["analyze", str(vs), "--app", app, "-o", "json"]) == 79
    as_json = json.loads(capsys.readouterr().out)
    hit = next(d for d in as_json if d["code"] == "IST0101")
    assert hit["level"] == "Error" and hit["line"] == 8 and hit["column"] > 0
    assert hit["origin"] == "VirtualService shop/p"
    assert hit["reference"] == f"{vs}:8"
    assert hit["documentationUrl"].endswith(
        "/docs/reference/config/analysis/ist0101/?ref=istioctl-analyze"
    )
    assert main(["analyze", str(vs), "--app", app, "-o", "yaml"]) == 79
    assert yaml.safe_load(capsys.readouterr().out) == as_json


def test_notes_on_ignored_fields_need_verbose_and_never_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """meshplay's notes (a ConfigMap has no effect on the mesh) are not findings about the
    configuration: hidden unless -v, and never a reason to exit non-zero."""
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n")
    assert main(["analyze", str(cm), "--failure-threshold", "info"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "1 note on fields and kinds" in captured.err
    assert main(["analyze", str(cm), "-v", "--failure-threshold", "info"]) == 0
    assert "info[MPY2004] ConfigMap c:" in capsys.readouterr().out
