"""The one console script, `subsidy-bot`. Each subcommand lives in its own module, which
provides `configure(parser)` (its arguments) and `main(args) -> int` (the work)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sqlite3
import sys

COMMANDS = {
    "rules": ("bot.rules_cli", "the rules engine: answers JSON -> verdict JSON"),
    "co2": ("bot.co2_cli", "CO2 estimate: equipment JSON -> t-CO2 before/after JSON"),
    "console": (
        "bot.console.runner",
        "the dialog in a terminal (staff runner, scenarios)",
    ),
    "dialog": ("bot.diagram", "the dialog machine (diagram)"),
    "run": ("bot.telegram.app", "run the Telegram bot (long polling or webhook)"),
    "line": ("bot.line.app", "run the LINE bot (Messaging API webhook)"),
    "admin": ("bot.admin.cli", "review stored conversations"),
    "bench": ("bench.harness", "speed against python-telegram-bot's floor (bench/)"),
}


def add_bot_options(parser: argparse.ArgumentParser) -> None:
    """The options every running bot (Telegram, LINE) shares: log level, evaluation date."""
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="default: LOG_LEVEL, else INFO",
    )
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        help="evaluate on this date, YYYY-MM-DD (default: today)",
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="subsidy-bot", description="Tochigi decarbonisation subsidy screener"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if only in (None, name):  # import only what this invocation needs
            importlib.import_module(module).configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(chosen).parse_args(argv)
    try:
        return importlib.import_module(COMMANDS[args.command][0]).main(args)
    except BrokenPipeError:  # `... | head` stopped reading: not worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except sqlite3.DatabaseError as exc:  # damage found while reading (admin tools)
        if getattr(exc, "sqlite_errorname", "") not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            raise
        from bot.storage import StorageError

        path = getattr(args, "db", None) or "?"
        problem = StorageError("damaged", path=path, problem=exc)
        print(problem.text(getattr(args, "lang", None)), file=sys.stderr)
        return 1
    except Exception as exc:
        # bot.storage is not imported here: commands without a database start faster. One
        # that raised a StorageError has imported it.
        storage = sys.modules.get("bot.storage")
        if storage is None or not isinstance(exc, storage.StorageError):
            raise
        print(exc.text(getattr(args, "lang", None)), file=sys.stderr)  # one line, no traceback
        return 1


if __name__ == "__main__":
    sys.exit(main())
