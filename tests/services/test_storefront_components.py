"""The React storefront's own checks, run with the JavaScript ecosystem's tools from pytest so
CI runs them: TypeScript's type check, the component tests (Vitest + Testing Library in jsdom,
`services/frontend/web/src/**/*.test.tsx`), and `npm audit` of the production dependencies.
`bin/setup --test` installs Node.js and the npm packages."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.services.stack import ROOT

WEB = ROOT / "services" / "frontend" / "web"
pytestmark = pytest.mark.node


def npm(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    npm_bin = shutil.which("npm")
    assert npm_bin, "npm is missing: bin/setup --test installs Node.js"
    assert (WEB / "node_modules").is_dir(), "run bin/setup --test (npm ci) first"
    return subprocess.run(
        [npm_bin, *args], cwd=WEB, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_storefront_type_checks() -> None:
    done = npm("run", "--silent", "typecheck")
    assert done.returncode == 0, done.stdout + done.stderr


def test_component_tests_pass_in_vitest() -> None:
    done = npm("exec", "--", "vitest", "run", "--reporter=verbose")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert " passed" in output and " failed" not in output.split("Test Files")[-1], output


def test_production_dependencies_are_react_only_and_have_no_high_severity_advisory() -> None:
    """What ships to the browser is React (react, react-dom, scheduler); everything else is a
    build or test tool. `npm audit --omit=dev` must find no high or critical advisory; where the
    registry's audit endpoint cannot be reached, that half is skipped with npm's reason."""
    tree = json.loads(npm("ls", "--omit=dev", "--all", "--json").stdout)

    def names(deps: dict[str, dict[str, object]]) -> set[str]:
        found = set(deps)
        for dep in deps.values():
            found |= names(dep.get("dependencies", {}))  # type: ignore[arg-type]
        return found

    assert names(tree["dependencies"]) == {"react", "react-dom", "scheduler"}
    audit = npm("audit", "--omit=dev", "--json", timeout=120)
    try:
        report = json.loads(audit.stdout)
    except json.JSONDecodeError:
        report = {}
    if "metadata" not in report:
        pytest.skip(
            f"npm audit could not reach the advisory service: {audit.stderr.strip()[-300:]}"
        )
    counts = report["metadata"]["vulnerabilities"]
    assert counts["high"] == counts["critical"] == 0, json.dumps(report["vulnerabilities"])[:3000]
