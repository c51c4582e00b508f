"""PATH arguments of proxy-config and authz-check: a lesson at a step, or YAML plus an app."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.model import VirtualService
from playground.cli import main
from playground.inputs import InputError, mesh_resources

ROOT = Path(__file__).resolve().parents[2]
LESSON = str(ROOT / "lessons" / "01-request-routing")


def _product_vs(step: str | None) -> VirtualService:
    resources, found = mesh_resources([LESSON], step=step)
    assert not found
    return next(r for r in resources if isinstance(r, VirtualService) and r.name == "product")


def test_step_by_number_or_name_defaults_to_the_last() -> None:
    assert len(_product_vs(None).http) == 2  # step 3: item pages + catalog
    assert len(_product_vs("2").http) == 1
    assert len(_product_vs("Pin every request to v1").http) == 1


def test_unknown_step_is_an_input_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError, match=r"--step 'nosuch': the lesson has steps 1..3"):
        mesh_resources([LESSON], step="nosuch")
    assert main(["proxy-config", "clusters", LESSON, "--proxy", "frontend-v1", "--step", "9"]) == 2
    assert "the lesson has steps 1..3" in capsys.readouterr().err


def test_yaml_on_top_of_an_app_keeps_the_last_definition(tmp_path: Path) -> None:
    vs = tmp_path / "vs.yaml"
    doc = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        "metadata: {{name: product, namespace: shop}}\nspec: {{hosts: [{host}]}}\n"
    )
    vs.write_text(doc.format(host="a") + "---\n" + doc.format(host="b"))
    resources, _ = mesh_resources([str(vs)], app=str(ROOT / "lessons" / "apps" / "ecommerce"))
    products = [r for r in resources if isinstance(r, VirtualService)]
    assert [r.hosts for r in products] == [("b",)]
    assert any(r.KIND == "Deployment" for r in resources)
