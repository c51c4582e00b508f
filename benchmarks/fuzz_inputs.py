"""The long bad-input hunt (not a CI test): the properties of
``tests/test_bad_input_never_crashes.py`` with 10,000 examples each (the CLI property, which runs
the simulator, with a quarter of that), reporting the time taken and any failing example.

    .venv/bin/python benchmarks/fuzz_inputs.py [--examples N] [-k EXPRESSION]

pytest's per-test timeout (300 s in pyproject, for CI) is switched off here: a property with
10,000 examples runs longer than that, and pytest-timeout would report it as a failure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("-k", dest="only", default="", help="only the properties matching this")
    args = parser.parse_args()
    env = {**os.environ, "FUZZ_EXAMPLES": str(args.examples)}
    started = time.monotonic()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=0",
         "--durations=0", "--hypothesis-show-statistics", *(["-k", args.only] if args.only else []),
         "tests/test_bad_input_never_crashes.py"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    print(
        f"{args.examples} examples per property: exit {code} in {time.monotonic() - started:.0f} s"
    )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
