"""Exercises grade behaviour: several different correct answers pass, plausible wrong ones fail
with the check or diagnostic that explains them, and the learner's flow (start, check, hint,
solution) works end to end on the command line.

Answers live in ``testdata/exercises/<exercise>/<good|bad>-<case>/``, laid out like a workspace.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError, render
from mesh.exercise import (
    PROGRESS_FILE,
    CheckReport,
    check_workspace,
    find_exercises,
    load_exercise,
    read_progress,
)
from playground.cli import main
from playground.runners import get_runner

HERE = Path(__file__).parent / "testdata" / "exercises"
ROOT = Path(__file__).resolve().parents[2]


def _cases(kind: str) -> list[tuple[str, str]]:
    return sorted(
        (ex.name, case.name)
        for ex in HERE.iterdir()
        if ex.is_dir()
        for case in ex.iterdir()
        if case.name.startswith(kind + "-")
    )


WRONG: dict[tuple[str, str], tuple[int, str]] = {
    # (exercise, case): (the first step that fails, what explains it: a metric or a diagnostic code)
    ("canary-rollback", "bad-wrong-subset"): (1, "IST0101"),
    ("canary-rollback", "bad-weight-sum"): (1, "share"),
    ("canary-rollback", "bad-rule-after-catch-all"): (1, "IST0130"),
    ("canary-rollback", "bad-second-virtualservice"): (3, "IST0109"),
    ("canary-rollback", "bad-alert-whole-service"): (2, "alert"),
    ("canary-rollback", "bad-alert-for-too-long"): (2, "alert"),
    ("secure-payments", "bad-wrong-namespace"): (2, "rate"),
    ("secure-payments", "bad-no-mtls"): (3, "count"),
    ("secure-payments", "bad-wrong-principal"): (1, "rate"),
    ("secure-payments", "bad-whole-namespace-allow"): (4, "rate"),
    ("open-the-front-door", "bad-not-bound-to-gateway"): (1, "count"),
    ("open-the-front-door", "bad-selector-typo"): (1, "IST0101"),
    ("open-the-front-door", "bad-gateway-other-namespace"): (1, "IST0101"),
    ("open-the-front-door", "bad-destination-typo"): (1, "IST0101"),
    ("open-the-front-door", "bad-host-mismatch"): (1, "IST0132"),
    ("open-the-front-door", "bad-every-host"): (2, "count"),
    ("beta-testers-and-canary", "bad-split-before-testers"): (1, "IST0130"),
    ("beta-testers-and-canary", "bad-exact-both-names"): (1, "share"),
    ("beta-testers-and-canary", "bad-prefix-takes-jasonb"): (1, "share"),
    ("beta-testers-and-canary", "bad-testers-split-too"): (1, "share"),
    ("beta-testers-and-canary", "bad-no-destination-rule"): (1, "IST0101"),
    ("orders-need-a-login", "bad-request-authentication-only"): (1, "rate"),
    ("orders-need-a-login", "bad-policy-without-request-authentication"): (1, "rate"),
    ("orders-need-a-login", "bad-token-required-everywhere"): (1, "rate"),
    ("orders-need-a-login", "bad-wrong-issuer"): (1, "rate"),
    ("orders-need-a-login", "bad-selects-order"): (1, "count"),
    ("pin-product-v1", "bad-no-destination-rule"): (1, "IST0101"),
    ("pin-product-v1", "bad-only-api-gateway"): (2, "share"),
    ("pin-product-v1", "bad-label-typo"): (1, "IST0173"),
    ("pin-product-v1", "bad-destination-rule-only"): (1, "share"),
    ("payment-error-alert", "bad-threshold-too-high"): (2, "alert"),
    ("payment-error-alert", "bad-wrong-service"): (2, "alert"),
    ("payment-error-alert", "bad-counts-all-traffic"): (1, "alert"),
    ("payment-error-alert", "bad-for-too-long"): (2, "alert"),
    ("payment-error-alert", "bad-dashboard-errors-per-second"): (2, "panel"),
    ("payment-error-alert", "bad-dashboard-no-version-split"): (2, "panel"),
    ("payment-error-alert", "bad-dashboard-p99-without-le"): (1, "panel"),
    ("payment-error-alert", "bad-dashboard-median"): (1, "panel"),
    ("survive-a-sick-pod", "bad-retries-exceed-timeout"): (2, "latency_p99_ms"),
    ("survive-a-sick-pod", "bad-per-try-not-retried"): (2, "success_rate"),
    ("survive-a-sick-pod", "bad-destination-rule-wrong-namespace"): (2, "IST0174"),
    ("survive-a-sick-pod", "bad-retries-only"): (2, "count"),
    ("survive-a-sick-pod", "bad-pin-to-v1"): (1, "share"),
    ("survive-a-sick-pod", "bad-max-ejection-percent-0"): (2, "count"),
    ("scope-the-sidecars", "bad-namespace-default-only"): (1, "proxy_config"),
    ("scope-the-sidecars", "bad-selector-typo"): (1, "IST0101"),
    ("scope-the-sidecars", "bad-short-host-names"): (1, "count"),
    ("scope-the-sidecars", "bad-forgot-payment"): (2, "count"),
    ("scope-the-sidecars", "bad-two-sidecars-for-order"): (2, "IST0110"),
}


def _workspace(tmp_path: Path, exercise: str, case: str) -> Path:
    folder = tmp_path / case
    shutil.copytree(HERE / exercise / case, folder)
    return folder


def _check(exercise_id: str, folder: Path) -> tuple[CheckReport, list[str]]:
    exercise = load_exercise(ROOT / "lessons" / "exercises" / exercise_id)
    report, lines = check_workspace(exercise, folder, get_runner("sim"), seed=1, revealed=True)
    assert report is not None, "\n".join(lines)
    return report, lines


def test_every_exercise_has_two_good_and_three_wrong_answers() -> None:
    """The acceptance bar: each exercise is tested against several answers, both ways."""
    for folder in find_exercises():
        goods = [c for e, c in _cases("good") if e == folder.name]
        bads = [c for e, c in _cases("bad") if e == folder.name]
        assert len(goods) >= 2 and len(bads) >= 3, folder.name
        assert all((folder.name, b) in WRONG for b in bads), "say what explains each wrong one"


@pytest.mark.parametrize("exercise_id", [p.name for p in find_exercises()])
def test_reference_solution_passes(exercise_id: str) -> None:
    """The shipped solution passes its own check (``workspace/`` falls back to solution/)."""
    exercise = load_exercise(ROOT / "lessons" / "exercises" / exercise_id)
    report, lines = _check(exercise_id, exercise.solution)
    assert report.passed, "\n".join(report.lines())
    assert lines == [], "the reference solution analyzes clean"


@pytest.mark.parametrize(("exercise_id", "case"), _cases("good"))
def test_a_different_correct_answer_passes(tmp_path: Path, exercise_id: str, case: str) -> None:
    """Grading is on behaviour: other names, files, API versions and styles pass too."""
    report, _ = _check(exercise_id, _workspace(tmp_path, exercise_id, case))
    assert report.passed, "\n".join(report.lines())


@pytest.mark.parametrize(("exercise_id", "case"), sorted(WRONG))
def test_a_wrong_answer_fails_with_its_explanation(
    tmp_path: Path, exercise_id: str, case: str
) -> None:
    """A plausible mistake fails, at the step where it shows, explained by a failed check of
    the named metric or by the analyzer's diagnostic on the learner's own file."""
    step, explanation = WRONG[(exercise_id, case)]
    folder = _workspace(tmp_path, exercise_id, case)
    report, lines = _check(exercise_id, folder)
    assert not report.passed
    ran = [s for s in report.run.steps if not s.skipped]
    first_failed = next(i for i, s in enumerate(ran, 1) if not s.passed)
    assert first_failed == step, "\n".join(report.lines())
    if explanation.startswith(("IST", "MPY")):
        assert any(f"[{explanation}]" in line and str(folder) in line for line in lines), lines
    else:
        failed = [c for c in ran[step - 1].checks if not c.passed]
        assert any(c.expectation.metric == explanation for c in failed), report.lines()


def test_learner_flow_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """start -> check (fails, checks hidden) -> hint until none are left -> check shows what
    failed -> solution -> the answer copied in -> check passes and progress records it."""
    ws = tmp_path / "canary"
    assert main(["exercise", "start", "canary-rollback", str(ws)]) == 0
    assert (ws / "GOAL.md").read_text().startswith("# Canary release")
    assert (ws / "canary").is_dir() and (ws / "rollback").is_dir()
    capsys.readouterr()

    assert main(["exercise", "check", str(ws)]) == 1  # nothing written yet
    out = capsys.readouterr().out
    assert "a hidden check" in out and "share(" not in out

    hints = load_exercise(ROOT / "lessons" / "exercises" / "canary-rollback").spec.hints
    for n in range(1, len(hints) + 1):
        assert main(["exercise", "hint", str(ws)]) == 0
        assert f"hint {n}/{len(hints)}" in capsys.readouterr().out
    assert main(["exercise", "hint", str(ws)]) == 0
    assert "no more hints" in capsys.readouterr().out

    assert main(["exercise", "check", str(ws)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  share(api-gateway->product v2) in [0.05, 0.15]" in out

    assert main(["exercise", "solution", str(ws)]) == 0
    capsys.readouterr()
    assert main(["exercise", "solution", str(ws)]) == 2  # never overwrites
    shutil.copytree(ws / "solution", ws, dirs_exist_ok=True)  # canary/, rollback/, alerts.yaml
    assert main(["exercise", "check", str(ws)]) == 0
    assert "PASSED" in capsys.readouterr().out
    progress = read_progress(ws)
    assert progress is not None and progress.passed == ("sim",) and progress.solution_shown


def test_check_outside_a_workspace_and_unknown_exercise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Misuse is a one-line error with a way forward, exit 2."""
    assert main(["exercise", "check", str(tmp_path)]) == 2
    assert f"no {PROGRESS_FILE}" in capsys.readouterr().err
    assert main(["exercise", "start", "no-such-exercise", str(tmp_path / "x")]) == 2
    assert "exercises: " in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.yaml").write_text("x: 1\n")
    assert main(["exercise", "start", "canary-rollback", str(tmp_path / "full")]) == 2


def test_yaml_that_does_not_load_is_positioned_in_the_learners_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in the learner's YAML is reported at its file:line:col, and nothing runs."""
    ws = tmp_path / "ws"
    assert main(["exercise", "start", "canary-rollback", str(ws)]) == 0
    (ws / "canary" / "vs.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: p}\n"
        "spec:\n  hosts: [product]\n  htp: []\n"
    )
    capsys.readouterr()
    assert main(["exercise", "check", str(ws)]) == 2
    err = capsys.readouterr().err
    assert f"{ws / 'canary' / 'vs.yaml'}:6:3: error[" in err


def test_bad_exercise_yaml_is_a_positioned_mpy6001(tmp_path: Path) -> None:
    """exercise.yaml's own mistakes: unknown phase, unknown field - all at once."""
    (tmp_path / "exercise.yaml").write_text(
        "title: T\nphase: expert\ngoal: g\nhintz: [a]\n", encoding="utf-8"
    )
    with pytest.raises(DiagnosticError) as info:
        load_exercise(tmp_path)
    text = render(info.value.diagnostics)
    assert f"{tmp_path / 'exercise.yaml'}:2:8: error[MPY6001]" in text
    assert "hintz" in text


def test_listing_shows_every_exercise_by_phase(capsys: pytest.CaptureFixture[str]) -> None:
    """``meshplay exercise list`` names each exercise under its phase."""
    assert main(["exercise", "list"]) == 0
    out = capsys.readouterr().out
    for folder in find_exercises():
        assert folder.name in out
    assert out.index("foundation:") < out.index("traffic-management:") < out.index("security:")


@pytest.mark.envoy
@pytest.mark.prometheus
@pytest.mark.slow
def test_a_learners_answer_is_graded_on_real_envoy_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same check on the local runner: the learner's canary and rollback pushed to real
    Envoy sidecars in front of the real services, graded on their access logs, and their alert
    evaluated by a real Prometheus scraping the real Envoys."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "canary-rollback" / "good-relative-weights", ws)
    (ws / ".meshplay-exercise.yaml").write_text("exercise: canary-rollback\n")
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == 0, capsys.readouterr()
    assert "PASSED" in capsys.readouterr().out
    progress = read_progress(ws)
    assert progress is not None and progress.passed == ("local",)


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code"), [("good-gateway-errors", 0), ("bad-max-ejection-percent-0", 1)]
)
def test_outlier_detection_answers_are_graded_on_real_envoy_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, code: int
) -> None:
    """survive-a-sick-pod on real Envoy sidecars: a per-try timeout retried elsewhere and an
    ejection of the slow pod pass; the same outlier detection with maxEjectionPercent 0 (Envoy's
    10 % default: one pod of two is 50 %) never ejects it, on Envoy 1.40 as on sim."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "survive-a-sick-pod" / case, ws)
    (ws / ".meshplay-exercise.yaml").write_text(
        "exercise: survive-a-sick-pod\nsolution_shown: true\n"
    )
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == code, capsys.readouterr()
    out = capsys.readouterr().out
    if code == 0:
        assert "PASSED" in out
    else:
        assert "FAIL  count(product product-v2 reporter=destination) <= 25" in out, out
        assert "ok    success_rate(api-gateway->product) >= 0.995" in out, out


@pytest.mark.envoy
@pytest.mark.slow
def test_sidecar_scoping_is_graded_on_real_envoy_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """scope-the-sidecars on real Envoy sidecars: a namespace default that knows only
    istio-system plus one Sidecar per caller; the scoped proxies load the smaller
    configuration and the catalog and checkout still succeed through the mesh services."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "scope-the-sidecars" / "good-default-deny-plus-callers", ws)
    (ws / ".meshplay-exercise.yaml").write_text("exercise: scope-the-sidecars\n")
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == 0, capsys.readouterr()
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code"), [("good-gateway-in-istio-system", 0), ("bad-every-host", 1)]
)
def test_front_door_answers_are_graded_on_real_envoy_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, code: int
) -> None:
    """open-the-front-door on the real ingress gateway Envoy: a Gateway kept in istio-system
    and named istio-system/public by the VirtualService lets shop.example.com in and answers
    any other host 404 NR; Istio's getting-started "*" on both resources lets every host in."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "open-the-front-door" / case, ws)
    (ws / ".meshplay-exercise.yaml").write_text(
        "exercise: open-the-front-door\nsolution_shown: true\n"
    )
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == code, capsys.readouterr()
    out = capsys.readouterr().out
    if code == 0:
        assert "PASSED" in out
    else:
        assert "FAIL  count(ingress->frontend reporter=destination) = 0" in out, out
        assert "step 1/2  shop.example.com reaches the storefront through the mesh  pass" in out


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code"), [("good-regex-relative-weights", 0), ("bad-prefix-takes-jasonb", 1)]
)
def test_beta_testers_answers_are_graded_on_real_envoy_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, code: int
) -> None:
    """beta-testers-and-canary on real Envoy sidecars: Envoy's RE2 header regex matches the
    whole value (jason|alice is those two names) and weights 4:1 are relative; a prefix match
    on jason also pins jasonb to v2."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "beta-testers-and-canary" / case, ws)
    (ws / ".meshplay-exercise.yaml").write_text(
        "exercise: beta-testers-and-canary\nsolution_shown: true\n"
    )
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == code, capsys.readouterr()
    out = capsys.readouterr().out
    if code == 0:
        assert "PASSED" in out
    else:
        assert "FAIL  share(api-gateway->product v1 /products/scale) in [0.6, 0.95]: 0 " in out, out


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "code"), [("good-two-files-v1beta1", 0), ("real-only-bad-token-stripped", 1)]
)
def test_login_answers_are_graded_on_real_envoy_and_services(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, code: int
) -> None:
    """orders-need-a-login on real Envoy in front of the real services: the user service's own
    keys (remote JWKS), a DENY of anonymous orders. Without forwardOriginalToken the sidecar
    strips alice's verified token and the real order service answers 401 itself - the one
    wrong answer only real services show (the simulator does not model the apps' own token
    check, docs/exercises.md)."""
    ws = tmp_path / "ws"
    shutil.copytree(HERE / "orders-need-a-login" / case, ws)
    (ws / ".meshplay-exercise.yaml").write_text(
        "exercise: orders-need-a-login\nsolution_shown: true\n"
    )
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == code, capsys.readouterr()
    out = capsys.readouterr().out
    if code == 0:
        assert "PASSED" in out
    else:
        assert "FAIL  rate(outside->api-gateway status=401 /api/orders/0123456789abcdef" in out, out
        assert "ok    rate(outside->api-gateway status=403 /api/orders) >= 0.99" in out, out


def _check_runners(folder: Path) -> tuple[str, ...]:
    from mesh.exercise import load_check

    return load_check(load_exercise(folder), None).spec.runners


def _on_metrics(folder: Path) -> bool:
    from mesh.exercise import load_check

    lesson = load_check(load_exercise(folder), None)
    return any(e.on_metrics for s in lesson.steps for e in s.expect)


@pytest.mark.envoy
@pytest.mark.slow
@pytest.mark.parametrize(
    "exercise_id",
    [
        pytest.param(p.name, marks=[pytest.mark.prometheus] if _on_metrics(p) else [])
        for p in find_exercises()
        if "local" in _check_runners(p)
    ],
)
def test_every_reference_solution_passes_on_real_envoy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exercise_id: str
) -> None:
    """Issue 20's acceptance: each exercise whose check lists local passes there with its
    reference solution - real Envoy sidecars in front of the real services."""
    ws = tmp_path / "ws"
    assert main(["exercise", "start", exercise_id, str(ws)]) == 0
    assert main(["exercise", "solution", str(ws)]) == 0
    shutil.copytree(ws / "solution", ws, dirs_exist_ok=True)
    capsys.readouterr()
    assert main(["exercise", "check", str(ws), "--runner", "local"]) == 0, capsys.readouterr()
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "exercise_id", [p.name for p in find_exercises() if "kube" in _check_runners(p)]
)
def test_a_kube_check_plans_without_a_cluster(exercise_id: str) -> None:
    """An exercise whose check lists kube has a whole kube plan (applies of the learner's
    files, waits, the traffic pods), as ``meshplay run --runner kube --dry-run`` prints it."""
    from cluster.kube import dry_run_plan
    from mesh.exercise import load_check
    from mesh.runner import RunOptions

    exercise = load_exercise(ROOT / "lessons" / "exercises" / exercise_id)
    plan = dry_run_plan(load_check(exercise, None), RunOptions())
    steps = [line for line in plan.splitlines() if line.startswith("== step ")]
    assert len(steps) == len(load_check(exercise, None).steps), plan[:2000]
    assert "solution/" in plan  # the reference answer's files are what it applies


def test_tui_refuses_a_folder_that_is_not_a_workspace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``meshplay tui --exercise DIR`` checks DIR before any screen is drawn."""
    assert main(["tui", "--root", str(ROOT / "lessons"), "--exercise", str(tmp_path)]) == 2
    assert f"no {PROGRESS_FILE}" in capsys.readouterr().err


def test_the_rule_files_a_real_prometheus_gets_are_the_learners(tmp_path: Path) -> None:
    """On a real runner Prometheus loads the rule files themselves: for an exercise those of
    the learner's workspace (they were looked for beside the check's lesson.yaml, and the local
    check of payment-error-alert stopped with "Prometheus would refuse .../workspace/alerts.yaml")."""
    from mesh.exercise import load_check

    exercise = load_exercise(ROOT / "lessons" / "exercises" / "payment-error-alert")
    folder = _workspace(tmp_path, "payment-error-alert", "good-success-ratio")
    lesson = load_check(exercise, folder)
    assert lesson.rule_files == (folder / "alerts.yaml",)
    assert load_check(exercise, None).rule_files == (exercise.solution / "alerts.yaml",)


def test_a_gateway_in_another_namespace_is_named_in_the_hint(tmp_path: Path) -> None:
    """A VirtualService naming a Gateway without its namespace means its own namespace; when
    the Gateway lives in istio-system the diagnostic says how to reference it (it used to
    suggest the very name the learner wrote)."""
    folder = _workspace(tmp_path, "open-the-front-door", "bad-gateway-other-namespace")
    _, lines = _check("open-the-front-door", folder)
    text = "\n".join(lines)
    assert 'Referenced gateway not found: "shop-gateway"' in text
    assert "the one in istio-system is referenced as istio-system/shop-gateway" in text
    assert 'did you mean "shop-gateway"' not in text


def test_a_missing_alert_or_panel_is_positioned_in_the_learners_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh payment-error-alert workspace has no rule and empty panels: the check says so
    at the learner's alerts.yaml and dashboard.yaml (exit 2, nothing runs), once each, not at
    the hidden check's lines with a hint meant for lesson authors."""
    ws = tmp_path / "ws"
    assert main(["exercise", "start", "payment-error-alert", str(ws)]) == 0
    capsys.readouterr()
    assert main(["exercise", "check", str(ws)]) == 2
    err = capsys.readouterr().err
    assert f'{ws / "alerts.yaml"}:1:1: error[MPY4004] no alerting rule "PaymentErrorBurst"' in err
    assert err.count("no alerting rule") == 1
    assert f"{ws / 'dashboard.yaml'}:1:1: error[MPY4001] panels[0]:" in err
    assert "lesson.yaml" not in err and "alert_rules" not in err
