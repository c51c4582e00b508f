"""``meshplay authz-check`` on the lessons: verdict, deciding policy and rule, exit codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from playground.commands import authz_check

ROOT = Path(__file__).resolve().parents[3]
LESSON_12 = str(ROOT / "lessons" / "12-http-authorization")


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    authz_check.register(parser.add_subparsers())
    args = parser.parse_args(["authz-check", *argv])
    code: int = args.handler(args)
    return code


def test_explicit_deny_is_named_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(LESSON_12, "--from", "order", "--to", "product",
                "--request", "POST /products/grinder/release", "-o", "json")  # fmt: skip
    verdicts = json.loads(capsys.readouterr().out)
    assert code == 1
    assert {v["pod"] for v in verdicts} == {"product-v1-0", "product-v2-0"}
    assert all(v["status"] == 403 and v["action"] == "DENY" for v in verdicts)
    assert verdicts[0]["policy"] == {"namespace": "shop", "name": "deny-release", "rule": 0}


def test_allow_list_and_default_deny(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(LESSON_12, "--from", "order-v1", "--to", "product",
                "--request", "POST /products/grinder/reserve") == 0  # fmt: skip
    assert "AuthorizationPolicy shop/order-stock rule 0 (ALLOW)" in capsys.readouterr().out
    assert _run(LESSON_12, "--step", "2", "--from", "order", "--request",
                "POST /products/grinder/reserve -H host:product") == 1  # fmt: skip
    assert "default deny (ALLOW policies exist)" in capsys.readouterr().out


def test_mtls_refusal_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    lesson_11 = str(ROOT / "lessons" / "11-mtls-migration")
    assert _run(lesson_11, "--step", "3", "--from", "outside", "--to", "product",
                "--request", "GET /products") == 1  # fmt: skip
    assert "PeerAuthentication" in capsys.readouterr().out
    assert (
        _run(lesson_11, "--from", "outside", "--to", "product", "--request", "GET /products") == 0
    )
    assert _run(LESSON_12, "--from", "nobody", "--to", "product", "--request", "GET /") == 2
    assert _run(LESSON_12, "--from", "order", "--to", "product", "--request", "GET") == 2
    assert _run(LESSON_12, "--from", "order", "--request", "GET /x") == 2
    assert "--to SERVICE" in capsys.readouterr().err
