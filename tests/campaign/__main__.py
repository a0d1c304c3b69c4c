"""`python -m tests.campaign [--quick] [--seed N]`: run the campaign, print its figures; exit 1
when anything was lost, misdelivered, unresumed, damaged or late."""

from __future__ import annotations

import argparse
import sys

from tests.campaign.run import FULL, QUICK, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.campaign")
    parser.add_argument("--quick", action="store_true", help="a short run (the test suite's)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = run(QUICK if args.quick else FULL, args.seed, progress=True)
    print(figures.report())
    for problem in figures.problems:
        print(f"PROBLEM: {problem}")
    return 1 if figures.problems else 0


if __name__ == "__main__":
    sys.exit(main())
