"""The process supervisor's lifetime guarantees on their own, without a mesh: children (and
their own children) die with the process that started them even when it is SIGKILLed, whichever
thread started them; and a child does *not* die merely because the thread that started it ended
(Envoy's hot-restart code asks the kernel for exactly that, ``PR_SET_PDEATHSIG``, which is tied to
the forking thread)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cluster.local.admin import AdminClient
from cluster.local.apps import ROOT
from cluster.local.envoy import envoy_argv
from cluster.local.ports import free_ports
from cluster.local.procs import ManagedProcess, Supervisor
from tests.cluster.local.proctree import Tree, reap, wait_for

PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from cluster.local.procs import Supervisor

    PY = sys.executable
    CHILDREN = {
        "sleeper": [PY, "-c", "import time; time.sleep(60)"],
        "listener": [PY, "-c", "import socket, time; s = socket.socket(); "
                     "s.bind(('127.0.0.1', 0)); s.listen(); time.sleep(60)"],
        # a child with a child of its own (as a server with worker processes has)
        "forker": [PY, "-c", "import subprocess, sys, time; "
                   "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                   "time.sleep(60)"],
    }
    supervisor = Supervisor(Path(sys.argv[1]))

    def start():
        for name, argv in CHILDREN.items():
            supervisor.start(name, argv, env={"PATH": "/usr/bin:/bin"})

    if sys.argv[2] == "worker-thread":  # as the TUI starts a runner: the thread ends first
        worker = threading.Thread(target=start)
        worker.start()
        worker.join()
    else:
        start()
    print("started", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("started_from", ["main-thread", "worker-thread"])
def test_children_and_grandchildren_die_with_a_sigkilled_parent(
    tmp_path: Path, started_from: str
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "logs"), started_from],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    tree = Tree(parent.pid)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "started", parent.stdout.read()

        def everything_up() -> bool:
            procs = tree.look()
            grandchild = any(p.ppid != parent.pid for p in procs)
            return grandchild and tree.serving() >= 1

        assert wait_for(everything_up, 10.0, 0.02)
        assert len(tree.seen) >= 4  # three children, one grandchild
        os.kill(parent.pid, signal.SIGKILL)
        tree.assert_gone()
    finally:
        reap(parent)


@pytest.mark.envoy
def test_an_envoy_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    """A break's ``restore`` restarts Envoys from a timer thread, and the TUI runs the whole
    runner in a worker thread: the Envoy must keep running after that thread ends."""
    (admin_port,) = free_ports(1)
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps({"admin": {"address": {"socket_address": {
        "address": "127.0.0.1", "port_value": admin_port}}}}))  # fmt: skip
    started: list[ManagedProcess] = []
    with Supervisor(tmp_path / "logs") as supervisor:

        def start() -> None:
            proc = supervisor.start("envoy", envoy_argv(config), env={"PATH": "/usr/bin:/bin"})
            started.append(proc)
            wait_for(AdminClient(admin_port, timeout_s=0.5).ready, 15.0, 0.05)

        thread = threading.Thread(target=start)
        thread.start()
        thread.join()
        assert started and AdminClient(admin_port).ready(), started[0].log_tail()
        time.sleep(1.0)
        assert started[0].running(), f"Envoy exited:\n{started[0].log_tail()}"
    assert not started[0].running()
