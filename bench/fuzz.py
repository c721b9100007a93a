"""The property-based test of tests/graphql/test_fuzz.py, for as long as asked.

Runs it in rounds (a new hypothesis seed each, FUZZ_EXAMPLES examples per role and
kind) until SECONDS have passed; stops at the first failure and prints it. Needs what
the test suite needs (DATABASE_URL, or the embedded PostgreSQL).

    .venv/bin/python bench/fuzz.py [--seconds 600] [--examples 200]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    stop_at = time.monotonic() + args.seconds
    rounds = 0
    while time.monotonic() < stop_at:
        seed = random.randrange(2**32)
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests/graphql/test_fuzz.py",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                f"--hypothesis-seed={seed}",
            ],
            cwd=REPO,
            env={**os.environ, "FUZZ_EXAMPLES": str(args.examples)},
            capture_output=True,
            text=True,
            check=False,
        )
        rounds += 1
        print(
            f"round {rounds} (seed {seed}): exit {done.returncode}"
            f" in {time.monotonic() - started:.0f} s",
            flush=True,
        )
        if done.returncode != 0:
            print(done.stdout[-20_000:])
            return 1
    print(f"{rounds} rounds, {rounds * args.examples * 10} generated requests, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
