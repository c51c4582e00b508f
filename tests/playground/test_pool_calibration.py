"""Pool calibration on access-log lines (no Envoy): the reconnect race of Istio's circuit-breaking
task measured from a client sidecar's time points (``US_CX_BEG``, ``US_HS_END``, ``US_RX_END``
after the request's first byte, the downstream connection's id), turned into the simulator's
:class:`sim.pool_timing.PoolTiming`, and the upstream's service time from the server sidecar's
``duration_us`` put into the simulated lesson (``meshplay compare --a sim --b local``).

The lines are those of two closed-loop clients on one connection with
``maxRequestsPerConnection: 1`` (``tests.pool_race``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.pool_calibration import (
    ServerDuration,
    logged_requests,
    race_steps,
    samples,
    server_durations,
)
from mesh.app.model import LatencyModel
from mesh.lesson import Lesson, load_lesson
from mesh.records import RequestRecord
from mesh.runner import LessonRun, RunOptions, StepResult
from playground.pool_calibration import calibrate_from_local, timing, with_service_times
from sim.pool_timing import Delay, Paired, PoolTiming, Sampled
from tests.pool_race import (
    FRESH_US,
    RETRY_AFTER_HS_US,
    SERVER_US,
    UO_US,
    reconnect_us,
    trial_records,
    turnaround_us,
    two_clients,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_race_delays_are_measured_from_the_time_points(tmp_path: Path) -> None:
    trial = two_clients("t", 30)
    log = tmp_path / "client.log"
    log.write_text("\n".join(trial.client) + "\nnot json\n", encoding="utf-8")
    s = samples([logged_requests(log, trial.ids)])
    ks = range(30)
    assert s.reconnect == pytest.approx([reconnect_us(k) for k in ks], abs=0.01)
    assert s.fresh == pytest.approx([FRESH_US])
    assert sorted(s.answer) == pytest.approx(sorted(turnaround_us(k) for k in ks[:-1]), abs=0.01)
    lost = [k for k in ks if turnaround_us(k) < reconnect_us(k)]
    assert 0 < len(lost) < 30
    # a UO during the handshake: its client comes back relative to the handshake's end
    assert s.after_handshake == pytest.approx([RETRY_AFTER_HS_US] * len(lost), abs=0.01)
    assert s.overflow == ()  # every UO came during a handshake
    assert s.overflow_duration == pytest.approx([UO_US] * len(lost))
    assert s.won() == pytest.approx((len(lost) - (29 in lost)) / 29)


def test_the_samples_become_the_simulators_pool_timing(tmp_path: Path) -> None:
    trial = two_clients("t", 30)
    log = tmp_path / "client.log"
    log.write_text("\n".join(trial.client), encoding="utf-8")
    t = timing(samples([logged_requests(log, trial.ids)]))
    assert isinstance(t.reconnect, Paired)
    assert sorted(t.reconnect.values_s)[0] == pytest.approx((700e-6, 400e-6))  # k = 0
    assert isinstance(t.request_leg, Delay) and math.isclose(t.request_leg.median_s, UO_US / 2e6)
    # one fresh connection is too few: a fresh connection is drawn from the reconnects
    assert isinstance(t.connect, Sampled) and len(t.connect.values_s) == 30
    assert isinstance(t.after_handshake, Sampled)
    assert t.after_handshake.median_s == pytest.approx(RETRY_AFTER_HS_US / 1e6)
    # no UO outside a handshake: the machine's idle turnaround is the floor
    assert isinstance(t.overflow, Delay) and t.overflow.median_s < 1e-4


def test_too_few_reconnects_do_not_calibrate(tmp_path: Path) -> None:
    trial = two_clients("t", 10)
    log = tmp_path / "client.log"
    log.write_text("\n".join(trial.client), encoding="utf-8")
    with pytest.raises(ValueError, match="too few samples"):
        timing(samples([logged_requests(log, trial.ids)]))


def local_run(
    tmp_path: Path, cycles: int, *, workdir: Path | None = None
) -> tuple[LessonRun, Path]:
    """bookinfo-05 as a local run would leave it: steps 2 and 3 raced, their logs in the
    workdir's ``access`` folder."""
    lesson = load_lesson(ROOT / "lessons" / "bookinfo-05-breakers")
    workdir = workdir or tmp_path / "mesh"
    (workdir / "access").mkdir(parents=True, exist_ok=True)
    client: list[str] = []
    server: list[str] = []
    steps = []
    for i, step in enumerate(lesson.steps):
        records: list[RequestRecord] = []
        if i > 0:
            trial = two_clients(f"s{i}", cycles)
            client += trial.client
            server += trial.server
            records = trial_records(trial)
        steps.append(StepResult(i, step, tuple(records), (), 1.0, 1.0))
    (workdir / "access" / "fortio-deploy-v1-0.log").write_text("\n".join(client), "utf-8")
    (workdir / "access" / "httpbin-v1-0.log").write_text("\n".join(server), "utf-8")
    return LessonRun(lesson, "local", 1, tuple(steps)), workdir


def test_compare_calibrates_the_sim_from_the_local_runs_logs(tmp_path: Path) -> None:
    run, workdir = local_run(tmp_path, 30)
    assert race_steps(run) == {"fortio-deploy": (1, 2)}
    measured = server_durations(workdir, run, (1, 2))
    assert [(m.service, m.method, m.path, len(m.durations_us)) for m in measured] == [
        ("httpbin", "GET", "/get", 62)
    ]
    cal = calibrate_from_local(run.lesson, run, workdir)
    assert cal is not None and cal.timing is not None
    assert cal.steps == (1, 2) and cal.workload == "fortio-deploy"
    assert len(cal.samples.reconnect) == 60  # both steps' trials
    assert set(cal.step_timing) == {1, 2}  # each step has enough reconnects of its own
    httpbin = cal.lesson.app.behavior.service("httpbin")
    assert httpbin is not None
    get = httpbin.endpoint("GET", "/get")
    assert get is not None and get.service_time is not None
    assert math.isclose(get.service_time.median.seconds, SERVER_US / 1e6)
    declared = run.lesson.app.behavior.service("httpbin")
    assert declared is not None and declared.endpoint("GET", "/get") != get  # the lesson's own kept
    line = cal.describe()
    assert "steps 2, 3" in line and "sim used the delays measured on local" in line
    assert "(steps 2, 3 with their own)" in line
    assert "reconnect" in line and "httpbin GET /get 2.60 ms (declared 2.00 ms)" in line


def test_a_run_without_enough_reconnects_keeps_the_default_timing(tmp_path: Path) -> None:
    run, workdir = local_run(tmp_path, 5)
    cal = calibrate_from_local(run.lesson, run, workdir)
    assert cal is not None and cal.timing is None and cal.lesson is run.lesson
    assert "sim used its default pool timing" in cal.describe()
    assert "10 reconnects measured (20 needed" in cal.describe()


def test_a_run_without_overflows_has_nothing_to_calibrate(tmp_path: Path) -> None:
    run, workdir = local_run(tmp_path, 30)
    quiet = LessonRun(run.lesson, "local", 1, run.steps[:1])
    assert calibrate_from_local(quiet.lesson, quiet, workdir) is None


def test_service_times_need_enough_requests() -> None:
    lesson = load_lesson(ROOT / "lessons" / "bookinfo-05-breakers")
    few = ServerDuration("httpbin", "GET", "/get", "v1", (9000.0,) * 5)
    same, notes = with_service_times(lesson, [few])
    assert notes == [] and same.app.behavior == lesson.app.behavior


RAN: list[str] = []
"""The fake runners' runs, in order."""


@dataclass
class FakeSim:
    """The ``sim`` runner as ``meshplay compare`` builds it: what it was given."""

    pool_timing: PoolTiming | None = None
    step_timing: Mapping[int, PoolTiming] | None = None
    name: str = "sim"
    service_time: LatencyModel | None = None

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        RAN.append("sim")
        httpbin = lesson.app.behavior.service("httpbin")
        get = httpbin.endpoint("GET", "/get") if httpbin else None
        self.service_time = get.service_time if get else None
        return LessonRun(lesson, "sim", 1, ())


SIMS: list[FakeSim] = []


def fake_sim(
    pool_timing: PoolTiming | None = None, step_timing: Mapping[int, PoolTiming] | None = None
) -> FakeSim:
    SIMS.append(FakeSim(pool_timing, step_timing))
    return SIMS[-1]


@dataclass
class FakeLocal:
    """The ``local`` runner: leaves bookinfo-05's access logs in its work folder."""

    workdir: Path | None
    name: str = "local"

    def run(self, lesson: Lesson, options: RunOptions) -> LessonRun:
        RAN.append("local")
        if self.workdir is None:  # a temporary folder of its own
            return LessonRun(lesson, "local", 1, ())
        run, _ = local_run(self.workdir, 30, workdir=self.workdir)
        return run


def fake_local(workdir: Path | None = None) -> FakeLocal:
    return FakeLocal(workdir)


def test_compare_runs_local_first_and_hands_the_sim_the_measured_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``meshplay compare L`` (sim against local): local runs first in a work folder compare
    owns, the sim gets the timing measured from its logs and the measured service time, and
    the output says so; ``--no-pool-calibration`` leaves the sim as it is."""
    from playground.cli import main
    from playground.runners import RUNNERS

    monkeypatch.setitem(RUNNERS, "sim", f"{__name__}:fake_sim")
    monkeypatch.setitem(RUNNERS, "local", f"{__name__}:fake_local")
    monkeypatch.chdir(ROOT)
    RAN.clear()
    main(["compare", "lessons/bookinfo-05-breakers"])
    out = capsys.readouterr().out
    assert RAN == ["local", "sim"]
    line = next(x for x in out.splitlines() if x.startswith("pool calibration:"))
    assert "steps 2, 3 (fortio-deploy's sidecar): sim used the delays measured on local" in line
    sim = SIMS[-1]
    assert isinstance(sim.pool_timing, PoolTiming)
    assert sim.step_timing is not None and set(sim.step_timing) == {1, 2}
    assert sim.service_time is not None
    assert math.isclose(sim.service_time.median.seconds, SERVER_US / 1e6)
    RAN.clear()
    main(["compare", "lessons/bookinfo-05-breakers", "--no-pool-calibration"])
    assert "pool calibration" not in capsys.readouterr().out
    assert RAN == ["sim", "local"] and SIMS[-1].pool_timing is None
