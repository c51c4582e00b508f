"""Nothing outlives meshplay: whatever kills the command that started the local mesh (SIGKILL,
SIGTERM, SIGINT), every process below it dies within seconds and no port it listened on stays
bound. The same holds for a pytest process running a local-mesh test, for Ctrl-C (or SIGTERM, or
SIGKILL) during ``meshplay up``, and for the detached owner ``up`` leaves behind.

Each test starts the real command as a subprocess, finds what it started by the parent chain in
``/proc`` (never by a process name: other engineers' meshes run on this machine too), remembers
each process with its start time and the ports it listens on, sends the signal, and then checks
those PIDs and ports. See ``cluster/local/procs.py`` for how the guarantee is built (every child
joins a process group led by a watchdog that kills the group when its parent's pipe closes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cluster.local.apps import ROOT
from cluster.local.state import MeshStateFile
from tests.cluster.local.proctree import Tree, listening_ports, reap, wait_for

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

MESH_PROCESSES = 17
"""The e-commerce app on the local runner: 8 replicas (an app process each) and 9 Envoys (one
sidecar per replica plus the ingress gateway). Each of them listens on at least one port."""

MONITORING_PROCESSES = 3
"""What ``meshplay up`` adds next to the mesh: Prometheus, the Istio-metrics exporter and the
trace collector (each listening on a port)."""

START_TIMEOUT_S = 60.0
"""Generous: mesh start-ups are serialised across the machine (``ports.start_lock``)."""


def _meshplay(state: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MESHPLAY_STATE_DIR": str(state)}
    return subprocess.Popen(
        [sys.executable, "-m", "playground", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _down(state: Path) -> None:
    """``meshplay down``: a no-op when the test passed, the clean-up when it did not."""
    subprocess.run(
        [sys.executable, "-m", "playground", "down"], cwd=ROOT, timeout=60, check=False,
        env={**os.environ, "MESHPLAY_STATE_DIR": str(state)}, capture_output=True,
    )  # fmt: skip


def _output(popen: subprocess.Popen[str]) -> str:
    try:
        out, err = popen.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        popen.kill()
        out, err = popen.communicate()
    return out + err


@pytest.mark.parametrize(
    ("sig", "when"),
    [
        (signal.SIGKILL, "running"),  # nothing in the CLI runs: the kernel just removes it
        (signal.SIGTERM, "starting"),  # the CLI stops its children while it starts them
        (signal.SIGINT, "starting"),
    ],
    ids=["SIGKILL-while-running", "SIGTERM-while-starting", "SIGINT-while-starting"],
)
def test_a_killed_run_leaves_no_process_and_no_port(
    tmp_path: Path, sig: signal.Signals, when: str
) -> None:
    """SIGKILL mid-run runs no clean-up code in the CLI at all; SIGTERM or Ctrl-C while the apps
    are being started lands, often, inside a ``Popen`` call, after the fork and before the
    child is recorded anywhere (before the watchdog, that child was left running)."""
    cli = _meshplay(tmp_path, "run", "lessons/01-request-routing", "--runner", "local")
    tree = Tree(cli.pid)
    try:
        if when == "running":
            up = wait_for(lambda: tree.serving() >= MESH_PROCESSES, START_TIMEOUT_S, 0.05)
            assert up, f"the mesh did not come up: {_output(cli)}"
            tree.watch(1.0)  # into the first step's traffic
        else:
            # among the app processes, started one after another after the 9 Envoys
            started = wait_for(lambda: len(tree.look(ports=False)) >= 12, START_TIMEOUT_S, 0.002)
            assert started, f"the mesh did not start: {_output(cli)}"
        os.kill(cli.pid, sig)
        tree.watch(0.3)
        tree.assert_gone()
        output = _output(cli)
        assert cli.returncode == (-signal.SIGKILL if sig is signal.SIGKILL else 130), output
    finally:
        reap(cli)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=lambda s: str(s.name))
def test_a_killed_pytest_leaves_no_process_and_no_port(tmp_path: Path, sig: signal.Signals) -> None:
    """pytest itself killed in the middle of a test that holds a local mesh (a CI job cancelled,
    a timeout that kills the worker): pytest has no SIGTERM handler and SIGKILL runs no code, so
    the test's own clean-up (the ``with LocalMesh`` block) never runs."""
    victim = tmp_path / "test_victim.py"
    victim.write_text(
        textwrap.dedent(
            f"""
            import time
            from pathlib import Path

            from cluster.local.mesh import LocalMesh
            from mesh.app import load_app

            # product's two versions, each with its sidecar, and the ingress gateway: a small
            # mesh that starts quickly on a busy machine (the whole app is the CLI tests' job)
            PARTS = {{"shop", "product", "product-v1", "product-v2"}}

            def test_holds_a_mesh(tmp_path: Path) -> None:
                app = load_app(Path({str(ROOT / "lessons" / "apps" / "ecommerce")!r}))
                with LocalMesh(tmp_path / "mesh") as mesh:
                    mesh.start([r for r in app.resources if r.name in PARTS])
                    print("mesh is up", flush=True)
                    time.sleep(60)
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    worker = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(victim)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    tree = Tree(worker.pid)
    try:
        assert worker.stdout is not None
        lines = iter(worker.stdout.readline, "")
        assert any("mesh is up" in line for line in lines), _output(worker)
        assert tree.serving() >= 5  # 2 apps, their 2 sidecars, the ingress gateway
        tree.watch(0.5)
        os.kill(worker.pid, sig)
        tree.assert_gone()
    finally:
        reap(worker)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: str(s.name)
)
def test_up_interrupted_while_starting_stops_everything(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C during ``meshplay up`` (issue 17 item 2): the detached owner has started part of
    the mesh; the owner and everything it started go, and no state file is left behind."""
    up = _meshplay(tmp_path, "up")
    tree = Tree(up.pid)
    try:
        # the owner, its watchdog and a few of the mesh's processes
        started = wait_for(lambda: len(tree.look(ports=False)) >= 8, START_TIMEOUT_S, 0.005)
        assert started, f"up did not start the mesh: {_output(up)}"
        os.kill(up.pid, sig)
        tree.watch(0.3)
        tree.assert_gone()
        output = _output(up)
        if sig is not signal.SIGKILL:
            assert up.returncode == 130, output
            assert "interrupted" in output
        assert not (tmp_path / "local.json").exists()
    finally:
        reap(up)
        _down(tmp_path)


def test_the_owner_of_an_up_mesh_takes_it_along_when_killed(tmp_path: Path) -> None:
    """``meshplay up`` returns with the mesh left running under its detached owner, on purpose;
    SIGKILL of that owner (the OOM killer, a ``kill -9``) must not orphan the mesh."""
    up = _meshplay(tmp_path, "up")
    output = _output(up)
    record = MeshStateFile.read(tmp_path / "local.json")
    assert up.returncode == 0 and record is not None, output
    tree = Tree(record.owner_pid)
    try:
        tree.look()
        listening = [p for p in tree.seen.values() if listening_ports([p])]
        assert len(listening) == MESH_PROCESSES + MONITORING_PROCESSES
        assert {p.pid for p in tree.seen.values()} >= {p.pid for p in record.processes[1:]}
        os.kill(record.owner_pid, signal.SIGKILL)
        tree.assert_gone()
    finally:
        _down(tmp_path)
