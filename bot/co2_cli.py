"""`subsidy-bot co2`: one piece of equipment as JSON on stdin, the CO2 estimate as JSON on stdout
(decimals written exactly), with the factors used and the working."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from pydantic import ValidationError

from bot.rules_cli import InputError, load_object, run_lines
from dialogs.co2_text import factor_name, percent, working_lines
from locales import t
from rules.co2 import KINDS, estimate, meets

# The command's names for the project types with a CO2 test (rules/data: led,
# equipment_replacement).
MEETS_NAMES = {"led": "led", "equipment_replacement": "equipment"}


def dumps(value) -> str:
    """JSON with every Decimal written as an exact number (json would need floats)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _input_error(exc: ValidationError, data: dict, line: int, lang) -> InputError:
    err = exc.errors()[0]
    ctx = err.get("ctx") or {}
    if err["type"] in ("co2_missing", "co2_conflict"):
        return InputError(t(f"co2.cli.{err['type'][4:]}", lang, line=line, **ctx))
    field = str(err["loc"][-1]) if len(err["loc"]) > 1 else "kind"
    value = json.dumps(data.get(field), default=str, ensure_ascii=False)
    return InputError(
        t("co2.cli.bad_value", lang, line=line, field=field, value=value, detail=err["msg"])
    )


def run_one(text: str, line: int, on: dt.date, lang: str | None = None) -> dict:
    data = load_object(text, line)
    if data.get("kind") not in KINDS:
        raise InputError(t("co2.cli.bad_kind", lang, line=line, allowed=", ".join(KINDS)))
    field = next((k for k, v in data.items() if isinstance(v, bool)), None)
    if field:  # pydantic would read true as 1
        value, detail = json.dumps(data[field]), "Input should be a number"
        raise InputError(
            t("co2.cli.bad_value", lang, line=line, field=field, value=value, detail=detail)
        )
    try:
        est = estimate(data, on)
    except ValidationError as exc:
        raise _input_error(exc, data, line, lang) from None
    ratio = est.reduction_ratio
    return {
        "co2_before_t": est.before_t,
        "co2_after_t": est.after_t,
        "reduction_t": est.reduction_t,
        "reduction_pct": None if ratio is None else percent(ratio),
        "meets": {
            MEETS_NAMES.get(k, k): ok for k, ok in meets(est.before_t, est.after_t, on).items()
        },
        "factors": [
            {
                "name": factor_name(f, lang),
                "value": f.value,
                "unit": f.unit,
                "source": f.source,
                "year": f.year,
            }
            for f in est.factors
        ],
        "working": working_lines(est, lang),
    }


def configure(parser) -> None:
    parser.add_argument("--date", help="evaluation date YYYY-MM-DD (default: today)")
    parser.add_argument("--jsonl", action="store_true", help="one equipment object per line")


def main(args) -> int:
    return run_lines(args.date, args.jsonl, lambda text, n, on: dumps(run_one(text, n, on)))
