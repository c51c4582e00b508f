"""``protocol: tcp`` traffic in lesson.yaml: accepted when coherent, positioned MPY4001/MPY4003
diagnostics otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.diagnostics import DiagnosticError
from mesh.lesson import load_lesson, parse_address

APPS = Path(__file__).parent / "testdata" / "lessons" / "apps"


def lesson(tmp_path: Path, traffic: str, expect: str = "") -> Path:
    """A lesson on the ``mini`` test app with this step traffic (YAML flow mapping)."""
    (tmp_path / "apps").symlink_to(APPS)
    folder = tmp_path / "tcp"
    folder.mkdir()
    (folder / "lesson.yaml").write_text(
        "title: TCP\napp: mini\nsteps:\n  - name: connect\n"
        f"    traffic: {traffic}\n" + (f"    expect:\n      - {expect}\n" if expect else ""),
        encoding="utf-8",
    )
    return folder


def test_tcp_traffic_to_an_address_from_a_workload_loads(tmp_path: Path) -> None:
    loaded = load_lesson(
        lesson(
            tmp_path,
            "{from: reviews-v1, to: '203.0.113.9:443', protocol: tcp, send_bytes: 517,"
            " receive_bytes: 4096, hold_s: 0.2, count: 5}",
            "rate: {edge: reviews->BlackHoleCluster, flag: UH}\n        equals: 1",
        )
    )
    traffic = loaded.steps[0].traffic
    assert traffic is not None
    assert (traffic.is_tcp, traffic.address, traffic.send_bytes, traffic.hold_s) == (
        True,
        ("203.0.113.9", 443),
        517,
        0.2,
    )


@pytest.mark.parametrize(
    ("traffic", "code", "message", "line"),
    [
        ("{to: reviews, protocol: udp}", "MPY4001", 'invalid protocol "udp"', 5),
        ("{to: reviews, send_bytes: 10}", "MPY4001", "send_bytes describes a TCP connection", 5),
        ("{to: reviews, protocol: tcp, hold_s: -1}", "MPY4001", "hold_s must not be negative", 5),
        ("{to: '203.0.113.9:443'}", "MPY4001", "only TCP traffic goes to an IP:port", 5),
        (
            "{to: reviews, protocol: tcp, requests: [{path: /}]}",
            "MPY4001",
            "a TCP connection carries no HTTP requests",
            5,
        ),
        ("{from: ingress, to: reviews, protocol: tcp}", "MPY4001", "ingress gateway", 5),
        ("{to: '203.0.113.9:443', protocol: tcp}", "MPY4001", "never meets a sidecar", 5),
        ("{to: revuews, protocol: tcp}", "MPY4003", 'traffic target "revuews"', 5),
    ],
)
def test_incoherent_tcp_traffic_is_reported_at_its_key(
    tmp_path: Path, traffic: str, code: str, message: str, line: int
) -> None:
    with pytest.raises(DiagnosticError) as caught:
        load_lesson(lesson(tmp_path, traffic))
    found = [d for d in caught.value.diagnostics if d.code == code]
    assert len(found) == 1, caught.value.diagnostics
    assert message in found[0].message
    assert (found[0].line, found[0].file.endswith("lesson.yaml")) == (line, True)
    assert found[0].path.startswith("steps[0].traffic.")


def test_an_edge_to_blackhole_needs_no_service_but_a_typo_still_fails(tmp_path: Path) -> None:
    with pytest.raises(DiagnosticError) as caught:
        load_lesson(
            lesson(
                tmp_path,
                "{from: reviews-v1, to: '203.0.113.9:443', protocol: tcp}",
                "rate: {edge: reviews->BlackHole, flag: UH}\n        equals: 1",
            )
        )
    assert [d.code for d in caught.value.diagnostics] == ["MPY4003"]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("203.0.113.9:443", ("203.0.113.9", 443)),
        ("reviews", None),
        ("reviews:9080", None),
        ("300.1.1.1:80", None),
        ("10.0.0.1", None),
    ],
)
def test_parse_address_takes_only_ipv4_with_a_port(
    text: str, parsed: tuple[str, int] | None
) -> None:
    assert parse_address(text) == parsed
