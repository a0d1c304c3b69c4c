"""The one console script, `subsidy-bot`, and its subcommands. Each subcommand's work lives in
the module named beside it; this file only parses arguments."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="subsidy-bot",
                                     description="Tochigi decarbonisation subsidy screener")
    sub = parser.add_subparsers(dest="command", required=True)

    rules = sub.add_parser("rules", help="the rules engine").add_subparsers(dest="action",
                                                                            required=True)
    check = rules.add_parser("check", help="answers JSON on stdin -> verdict JSON")
    check.add_argument("--date", help="evaluation date YYYY-MM-DD (default: today)")
    check.add_argument("--jsonl", action="store_true", help="one answers object per line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "rules":
        from bot.rules_cli import check
        return check(args.date, args.jsonl)
    return 2


if __name__ == "__main__":
    sys.exit(main())
