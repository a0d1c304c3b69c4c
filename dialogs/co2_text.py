"""An estimate as people read it: the working one line per step and the factors named. Figures
are rounded here, for display only (the estimate itself stays exact)."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from locales import t

if TYPE_CHECKING:  # for annotations only: the dialog shows numbers before any estimate
    from rules.co2 import Estimate, UsedFactor

PLACES = Decimal("0.001")  # kWh, litres, tonnes: to the thousandth
PERCENT = Decimal("0.01")


def number(value: Decimal | int, exact: bool = False) -> str:
    """30545.92 -> "30,545.92"; rounded to 3 decimals unless exact."""
    d = Decimal(value)
    if not exact and d.as_tuple().exponent < -3:
        d = d.quantize(PLACES, ROUND_HALF_UP)
    return format(d.normalize(), ",f")


def percent(ratio: Decimal) -> Decimal:
    """A ratio as a percentage to 2 decimals, cut (never rounded up across a threshold)."""
    return (ratio * 100).quantize(PERCENT, ROUND_DOWN)


def _shown(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if k == "ratio":
            out["percent"] = None if v is None else number(percent(v))
        elif isinstance(v, Decimal | int):
            out[k] = number(v, exact=k == "factor")
        else:
            out[k] = v
    return out


def working_lines(est: Estimate, lang: str | None = None) -> list[str]:
    lines = []
    for step in est.working:
        key = step.key
        if key == "reduction" and step.params["ratio"] is None:
            key = "reduction_no_ratio"
        lines.append(t(f"co2.working.{key}", lang, **_shown(step.params)))
    return lines


def factor_name(f: UsedFactor, lang: str | None = None) -> str:
    return t(f"co2.name.{f.id}", lang)


def factor_lines(est: Estimate, lang: str | None = None) -> list[str]:
    return [
        t(
            "co2.factor_own" if f.id == "electricity.own" else "co2.factor_line",
            lang,
            name=factor_name(f, lang),
            value=number(f.value, exact=True),
            unit=f.unit,
            source=f.source,
            year=f.year,
        )
        for f in est.factors
    ]
