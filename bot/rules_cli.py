"""`subsidy-bot rules check`: answers as JSON on stdin, the verdict as JSON on stdout."""

from __future__ import annotations

import datetime as dt
import json
import sys
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from enum import Enum

from pydantic import ValidationError

from dialogs.render import verdict_json
from locales import t
from rules import Answers, evaluate
from rules.clock import texts_on, today


class InputError(Exception):
    """A one-line, user-readable problem with the input (exit status 2)."""


def allowed_values(field: str) -> str:
    """What a field accepts, for the error message."""
    ann = Answers.model_fields[field].annotation
    inner = (
        next(a for a in typing.get_args(ann) if a is not type(None))
        if isinstance(ann, types.UnionType)
        else ann
    )
    if isinstance(inner, type) and issubclass(inner, Enum):
        return ", ".join(m.value for m in inner)
    return {
        bool: "true, false",
        int: "0, 1, 2, ... (integer >= 0, not true/false)",
        Decimal: "0, 12.5, 12.70710272 ... (exact decimal, 0 <= t <= 10^9, up to 100 places)",
    }.get(inner, str(inner))


def load_object(text: str, line: int) -> dict:
    """One JSON object, its decimals exact (64.1 stays 64.1, not a binary float)."""
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InputError(t("cli.invalid_json", line=line, detail=exc.msg)) from None
    if not isinstance(data, dict):
        raise InputError(t("cli.not_object", line=line))
    return data


def parse_answers(text: str, line: int) -> Answers:
    data = load_object(text, line)
    for field in data:
        if field not in Answers.model_fields:
            raise InputError(
                t(
                    "cli.unknown_field",
                    line=line,
                    field=field,
                    allowed=", ".join(Answers.model_fields),
                )
            )
    try:
        return Answers.model_validate(data)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        raise InputError(
            t(
                "cli.bad_value",
                line=line,
                field=field,
                value=json.dumps(data[field], default=str, ensure_ascii=False),
                allowed=allowed_values(field),
            )
        ) from None


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    check_p = sub.add_parser("check", help="answers JSON on stdin -> verdict JSON on stdout")
    check_p.add_argument("--date", help="evaluation date YYYY-MM-DD (default: today)")
    check_p.add_argument("--jsonl", action="store_true", help="one answers object per line")


def main(args) -> int:
    return check(args.date, args.jsonl)


def check(date: str | None, jsonl: bool, lang: str | None = None) -> int:
    return run_lines(
        date,
        jsonl,
        lambda text, n, on: json.dumps(
            verdict_json(evaluate(parse_answers(text, n), on=on), lang), ensure_ascii=False
        ),
        lang,
    )


def run_lines(
    date: str | None, jsonl: bool, handle: Callable[[str, int, dt.date], str], lang=None
) -> int:
    """stdin (one JSON object, or one per line) -> `handle(text, line, date)` printed per input;
    an InputError is one line on stderr and exit status 2."""
    try:
        on = dt.date.fromisoformat(date) if date else today()
    except ValueError:
        print(t("cli.bad_date", lang, value=date), file=sys.stderr)
        return 2
    texts = (
        [(n, line) for n, line in enumerate(sys.stdin, 1) if line.strip()]
        if jsonl
        else [(1, sys.stdin.read())]
    )
    try:
        with texts_on(on):  # messages quote the ruleset the verdict uses
            for n, text in texts:
                print(handle(text, n, on), flush=True)
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0
