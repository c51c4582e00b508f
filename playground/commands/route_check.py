"""``meshplay route-check CONFIG TESTS [--envoy] [--details] [--coverage]``: Envoy's
``router_check_tool`` on meshplay's route matcher.

CONFIG is an Envoy RouteConfiguration (YAML or JSON, any protobuf-JSON spelling Envoy accepts);
TESTS is a router_check_tool test file (``tests: [{test_name, input, validate}]``). Each test's
request is routed by the simulator's matcher (virtual host by domain, first matching route,
rewrites, redirects, direct responses, header mutations) and every ``validate`` field is
checked. Failures are printed the way the Envoy tool prints them; ``--details`` also names the
tests that pass; ``--coverage`` prints the share of routes some passing check exercised (and
which routes none did).

``--envoy`` also runs every test on the real Envoy binary (one listener with CONFIG, each route
instrumented to say what it matched, an echo listener behind every cluster) and reports each
test where meshplay and Envoy disagree.

Exit code: 0 every test passes (and, with ``--envoy``, Envoy agrees), 1 a test fails or Envoy
disagrees, 2 bad input (a positioned diagnostic: ``MPY1101`` Envoy would refuse it, ``MPY2101``
meshplay does not model it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mesh.diagnostics import render
from mesh.runner import RunnerError
from playground.route_tests import (
    Observed,
    RouteTest,
    load_route_config,
    load_tests,
    observe,
    run_checks,
)
from sim.xds import RouteTable

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``route-check`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "route-check",
        help="run Envoy router_check_tool tests on meshplay's route matcher (--envoy: and Envoy's)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", metavar="CONFIG", help="Envoy RouteConfiguration (YAML or JSON)")
    p.add_argument("tests", metavar="TESTS", help="router_check_tool tests (YAML or JSON)")
    p.add_argument(
        "--envoy", action="store_true", help="also run the tests on real Envoy and compare"
    )
    p.add_argument("-d", "--details", action="store_true", help="name every test, passing or not")
    p.add_argument(
        "--coverage", action="store_true", help="print route coverage and untested routes"
    )
    p.set_defaults(handler=_run)


def _route_label(table: RouteTable, where: tuple[int, int]) -> str:
    vh = table.vhosts[where[0]]
    route = vh.routes[where[1]]
    name = route.name or f"#{route.index}"
    return f"{vh.name or '#' + str(where[0])}/{name} ({route.path.describe()})"


def _coverage(table: RouteTable, covered: set[tuple[int, int]], detailed: bool) -> None:
    routes = [(v, r) for v, vh in enumerate(table.vhosts) for r in range(len(vh.routes))]
    share = 100.0 * len(covered & set(routes)) / len(routes) if routes else 100.0
    print(f"Current route coverage: {share:.6g}%")
    if detailed:
        missing = [w for w in routes if w not in covered]
        if missing:
            print("Routes no passing check exercised:")
            for where in missing:
                print(f"  {_route_label(table, where)}")


def _report(
    tests: list[RouteTest], results: list[tuple[Observed, list[str]]], details: bool
) -> int:
    failed = 0
    for test, (_, failures) in zip(tests, results, strict=True):
        if failures:
            failed += 1
            print(test.name, file=sys.stderr)
            for line in failures:
                print(line, file=sys.stderr)
        elif details:
            print(test.name)
    return failed


def _run(args: argparse.Namespace) -> int:
    table, rc, diagnostics = load_route_config(args.config)
    tests, found = load_tests(args.tests)
    diagnostics += found
    if diagnostics or table is None:
        print(render(diagnostics), file=sys.stderr)
        return 2
    results: list[tuple[Observed, list[str]]] = []
    covered: set[tuple[int, int]] = set()
    for test in tests:
        obs, _ = observe(table, test)
        failures = run_checks(test, obs)
        results.append((obs, failures))
        if obs.route is not None and len(failures) < len(test.checks):
            covered.add(obs.route)
    failed = _report(tests, results, args.details)
    print(f"{len(tests) - failed}/{len(tests)} tests pass on meshplay's route matcher")
    if args.coverage:
        _coverage(table, covered, detailed=True)
    if not args.envoy:
        return 1 if failed else 0
    from playground.route_check_envoy import compare_with_envoy

    try:
        disagreements, skipped = compare_with_envoy(table, rc, tests, [o for o, _ in results])
    except RunnerError as exc:
        print(f"error: real Envoy could not run the tests: {exc}", file=sys.stderr)
        return 2
    for name, lines in disagreements:
        print(f"{name}: meshplay and Envoy disagree", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
    for name, why in skipped:
        print(f"{name}: not compared with Envoy ({why})")
    compared = len(tests) - len(skipped)
    print(f"Envoy agrees with meshplay on {compared - len(disagreements)}/{compared} tests"
          + (f" ({len(skipped)} not comparable)" if skipped else ""))  # fmt: skip
    return 1 if failed or disagreements else 0
