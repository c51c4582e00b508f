"""The README's five-minute tour, run as written: every command of its code block, in order, from
a folder where ``lessons/`` is the repository's, each checked for its exit code and one line of
what it prints (``meshplay tui`` on a pseudo-terminal, left with ``q``). The commands come from
the README itself, so editing the tour without keeping it true fails here: a command without an
expectation below is an error, and so is an expectation whose command left the README."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.tui.pty_session import ALT_SCREEN_OFF, ALT_SCREEN_ON, PtySession

ROOT = Path(__file__).resolve().parents[1]
MESHPLAY = "./bin/meshplay"

EXPECTED: dict[str, tuple[int, str]] = {
    "./bin/meshplay lessons": (0, "16-egress-registry-only"),
    "./bin/meshplay analyze lessons/01-request-routing": (0, "No validation issues found"),
    "./bin/meshplay run lessons/01-request-routing --seed 7": (0, "PASSED: 7/7 expectations met"),
    "./bin/meshplay run lessons/06-retries --records out.jsonl": (0, "PASSED:"),
    "./bin/meshplay explain lessons/03-ab-testing-by-header --request 'GET /products -H "
    "end-user:jason'": (0, "result: 200"),
    "./bin/meshplay proxy-config routes deploy/api-gateway-v1 lessons/01-request-routing": (
        0,
        "product.shop.svc.cluster.local:8080",
    ),
    "./bin/meshplay authz-check lessons/12-http-authorization --from frontend --to product "
    "--request 'GET /products'": (1, "DENY   GET /products  frontend -> product-v1-0"),
    "./bin/meshplay run lessons/01-request-routing --runner local": (0, "PASSED: 7/7"),
    "./bin/meshplay compare lessons/01-request-routing": (0, "AGREE:"),
    "./bin/meshplay run lessons/06-retries --runner kube --dry-run": (
        0,
        "delete VirtualService shop/product",
    ),
    "./bin/meshplay query 'sum by (reporter, destination_version) (increase("
    "istio_requests_total[$__range]))' lessons/01-request-routing --step 2": (
        0,
        "DESTINATION_VERSION  REPORTER     VALUE",
    ),
    "./bin/meshplay traces lessons/18-distributed-tracing --step 2": (0, "<- slowest hop"),
    "./bin/meshplay graph lessons/02-traffic-shifting --step 1 -o svg canary.svg": (
        0,
        "wrote canary.svg (svg)",
    ),
    "./bin/meshplay exercise start canary-rollback my-canary": (
        0,
        "then: meshplay exercise check my-canary",
    ),
    "./bin/meshplay exercise check my-canary": (1, "not yet: 0 of 3 steps pass"),
    "./bin/meshplay tui": (0, "01 Request routing"),
}
"""Each tour command (as the README writes it, comment left out) -> exit code, a line it prints."""

REAL_ENVOY = ("--runner local", "compare")
"""Commands that start real Envoys (the local runner): marked ``envoy`` and ``slow``."""


def tour() -> list[str]:
    """The commands of the README's tour code block, comments left out."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## A five-minute tour", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(shlex.join(words).replace('"', "'"))
    return commands


def _key(command: str) -> str:
    return shlex.join(shlex.split(command)).replace('"', "'")


def _marks(command: str) -> list[pytest.MarkDecorator]:
    return [pytest.mark.envoy, pytest.mark.slow] if any(w in command for w in REAL_ENVOY) else []


@pytest.fixture(scope="module")
def here(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder to run the tour in: ``lessons`` is the repository's, files it writes stay here."""
    folder = tmp_path_factory.mktemp("tour")
    (folder / "lessons").symlink_to(ROOT / "lessons")
    return folder


def test_every_tour_command_has_an_expectation_and_every_expectation_a_command() -> None:
    commands = tour()
    expected = {_key(c) for c in EXPECTED}
    assert [c for c in commands if c not in expected] == [], "a README command without a check"
    assert [c for c in expected if c not in commands] == [], (
        "a check of a command gone from the README"
    )
    assert all(c.startswith(MESHPLAY) for c in commands)


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=_marks(c), id=c.split()[1]) for c in tour() if not c.endswith(" tui")],
)
def test_tour_command(command: str, here: Path) -> None:
    code, line = {_key(c): v for c, v in EXPECTED.items()}[command]
    argv = [str(ROOT / "bin" / "meshplay"), *shlex.split(command)[1:]]
    env = {**os.environ, "MESHPLAY_DATA_DIR": str(here / "data"), "COLUMNS": "160"}
    done = subprocess.run(
        argv, cwd=here, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    shown = done.stdout + done.stderr  # istioctl-style summaries go to stderr
    assert line in shown, shown[-2000:]
    if "--records out.jsonl" in command:
        records = (here / "out.jsonl").read_text().splitlines()
        assert len(records) > 100 and "response_code" in json.loads(records[0])


def test_tour_tui_paints_and_quits_on_q(here: Path) -> None:
    command = next(c for c in tour() if c.endswith(" tui"))
    code, line = EXPECTED[command]
    argv = [str(ROOT / "bin" / "meshplay"), *shlex.split(command)[1:]]
    tui = PtySession(argv, cwd=here, env={"MESHPLAY_DATA_DIR": str(here / "data")}, size=(80, 24))
    try:
        tui.wait_for(ALT_SCREEN_ON, 60)
        tui.wait_for(line.encode(), 60)
        mark = len(tui.output)
        tui.type("q")
        tui.wait_for(ALT_SCREEN_OFF, 10, since=mark)
    finally:
        exit_code = tui.finish(30)
    assert exit_code == code
