"""``meshplay graph``: a lesson step's traffic graph written as SVG, DOT or PNG."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from playground.cli import main

LESSONS = Path(__file__).resolve().parents[2] / "lessons"


def test_svg_of_the_canary_step_parses_and_shows_both_versions(tmp_path: Path) -> None:
    out = tmp_path / "canary.svg"
    assert (
        main(["graph", str(LESSONS / "02-traffic-shifting"), "--step", "1", "-o", "svg", str(out)])
        == 0
    )
    root = ET.fromstring(out.read_text(encoding="utf-8"))
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "product" in text and "v1" in text and "v2" in text
    assert "10%" in text or "9%" in text or "11%" in text  # the canary's share on its edge


def test_dot_is_accepted_by_graphviz_and_png_is_a_png(tmp_path: Path) -> None:
    lesson = str(LESSONS / "08-circuit-breaking")
    dot_file = tmp_path / "cb.dot"
    assert main(["graph", lesson, "--step", "2", "--hide-idle", "-o", "dot", str(dot_file)]) == 0
    dot = dot_file.read_text(encoding="utf-8")
    assert "UO" in dot and "rankdir=LR" in dot
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (bin/setup --test installs it)")
    svg = subprocess.run(
        ["dot", "-Tsvg", str(dot_file)], capture_output=True, text=True, check=True
    ).stdout
    ET.fromstring(svg)
    png = tmp_path / "cb.png"
    assert main(["graph", lesson, "--step", "2", "-o", "png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_format_and_step_are_usage_errors(tmp_path: Path) -> None:
    lesson = str(LESSONS / "02-traffic-shifting")
    assert main(["graph", lesson, "-o", "jpeg", str(tmp_path / "x")]) == 2
    assert main(["graph", lesson, "--step", "9", "-o", "svg", str(tmp_path / "x")]) == 2


@pytest.mark.envoy
@pytest.mark.slow
def test_the_local_runner_graph_shows_the_canary_over_mtls_from_real_envoy(tmp_path: Path) -> None:
    """The same graph from real Envoy sidecars' access logs: two edges, 90/10 within noise,
    both mutual TLS as the server-side sidecars report it."""
    out = tmp_path / "local.dot"
    lesson = str(LESSONS / "02-traffic-shifting")
    assert (
        main(
            [
                "graph",
                lesson,
                "--runner",
                "local",
                "--step",
                "1",
                "--hide-idle",
                "-o",
                "dot",
                str(out),
            ]
        )
        == 0
    )
    edges = [line for line in out.read_text(encoding="utf-8").splitlines() if "->" in line]
    assert len(edges) == 2
    assert all("mTLS" in e for e in edges)
    v2 = next(e for e in edges if '"product/v2"' in e)
    share = int(v2.split('label="mTLS ', 1)[1].split("%", 1)[0])
    assert 4 <= share <= 16
