"""The CO2 estimate for owners who know their equipment but not its tonnes. Pure: inputs in,
an `Estimate` out (t-CO2 before/after, the factors used, the working as locale keys + params).

Emission factors are dated data (rules/emission_factors/<date>.yaml, each value with unit,
source and fiscal year). Arithmetic is Decimal throughout; the only inexact steps are the
divisions by an efficiency or COP ratio (28 significant digits). Nothing is rounded here:
rounding is for display only, and the 第4 tests are decided on these exact values."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from rules.ruleset import Strict, ruleset_for

FuelId = Literal["a_heavy_oil", "kerosene", "diesel", "lpg", "lng", "city_gas"]
ELECTRICITY = "electricity"


# --- the dated factor data ---------------------------------------------------------------------
class Factor(Strict):
    value: Decimal = Field(gt=0)
    unit: str  # "t-CO2/<amount unit>"
    source: str
    year: str

    @property
    def per(self) -> str:
        """The unit of the amount the factor multiplies (kWh, kL, t, 千m³)."""
        return self.unit.split("/", 1)[1]


class ElectricityFactors(Strict):
    default: str
    factors: dict[str, Factor]

    @model_validator(mode="after")
    def _default_exists(self):
        if self.default not in self.factors:
            raise ValueError(f"default {self.default!r} is not one of the factors")
        return self


class FactorSet(Strict):
    effective_from: dt.date
    electricity: ElectricityFactors
    fuels: dict[FuelId, Factor]


@cache
def all_factor_sets() -> tuple[FactorSet, ...]:
    files = sorted(Path(str(resources.files("rules") / "emission_factors")).glob("*.yaml"))
    loaded = (FactorSet.model_validate(yaml.safe_load(f.read_text("utf-8"))) for f in files)
    return tuple(sorted(loaded, key=lambda s: s.effective_from))


def factor_set(on: dt.date) -> FactorSet:
    """The latest set in force on `on` (the oldest one before any: the only figures we have)."""
    sets = all_factor_sets()
    return next((s for s in reversed(sets) if s.effective_from <= on), sets[0])


# --- what the owner knows ----------------------------------------------------------------------
def _amount(le: int) -> type[Decimal]:
    return Annotated[Decimal, Field(ge=0, le=le, allow_inf_nan=False)]


Kwh = _amount(10**10)
Watts = _amount(10**5)
Hours = Annotated[Decimal, Field(gt=0, le=24, allow_inf_nan=False)]
Days = Annotated[Decimal, Field(gt=0, le=366, allow_inf_nan=False)]
Ratio = Annotated[Decimal, Field(gt=0, le=1, allow_inf_nan=False)]  # efficiency, load factor
Cop = Annotated[Decimal, Field(gt=0, le=20, allow_inf_nan=False)]
Fixtures = Annotated[int, Field(ge=0, le=10**6)]
OwnFactor = Annotated[Decimal, Field(gt=0, le=Decimal("0.01"), allow_inf_nan=False)]


def _missing(field_name: str) -> PydanticCustomError:
    """A field this way of describing the equipment needs (the error names it: no `loc`)."""
    return PydanticCustomError("co2_missing", "{field} is required", {"field": field_name})


def _conflict(field_name: str, way: str) -> PydanticCustomError:
    return PydanticCustomError(
        "co2_conflict", "{field} does not go with {way}", {"field": field_name, "way": way}
    )


class _Input(Strict):
    factor: OwnFactor | None = None  # t-CO2/kWh: the supplier's own electricity factor

    def _one_way(self, *ways: list[str], optional: tuple[str, ...] = ()) -> None:
        """Exactly one way of describing the equipment, complete: the way with most fields
        given is meant; an error names the first field missing or out of place."""
        given = [f for f in type(self).model_fields if f not in ("kind", "factor", "fuel")]
        given = [f for f in given if getattr(self, f) is not None]
        way = max(ways, key=lambda w: sum(f in w for f in given))  # the first on a tie
        for f in way:
            if getattr(self, f) is None and f not in optional:
                raise _missing(f)
        for f in given:
            if f not in way:
                raise _conflict(f, ", ".join(way))


class Lighting(_Input):
    kind: Literal["lighting"]
    fixtures: Fixtures | None = None
    watts_before: Watts | None = None
    watts_after: Watts | None = None
    fixtures_after: Fixtures | None = None  # when the count changes; default: the same
    hours_per_day: Hours | None = None
    days_per_year: Days | None = None
    kwh_before: Kwh | None = None
    kwh_after: Kwh | None = None

    @model_validator(mode="after")
    def _complete(self):
        watts = ["fixtures", "watts_before", "watts_after", "hours_per_day", "days_per_year"]
        self._one_way(
            [*watts, "fixtures_after"], ["kwh_before", "kwh_after"], optional=("fixtures_after",)
        )
        return self


class Electricity(_Input):
    kind: Literal["electricity"]
    kwh_before: Kwh | None = None
    kwh_after: Kwh | None = None
    rated_kw: _amount(10**6) | None = None
    load_factor: Ratio | None = None
    hours_per_day: Hours | None = None
    days_per_year: Days | None = None
    cop_before: Cop | None = None
    cop_after: Cop | None = None

    @model_validator(mode="after")
    def _complete(self):
        rated = ["rated_kw", "load_factor", "hours_per_day", "days_per_year"]
        self._one_way(["kwh_before", "kwh_after"], [*rated, "cop_before", "cop_after"])
        return self


class Fuel(_Input):
    kind: Literal["fuel"]
    fuel: FuelId
    amount_before: _amount(10**7) | None = None  # in the factor's unit: kL, t or 千m³
    amount_after: _amount(10**10) | None = None  # in fuel_after's unit (kWh for electricity)
    fuel_after: FuelId | Literal["electricity"] | None = None  # a fuel switch
    efficiency_before: Ratio | None = None
    efficiency_after: Ratio | None = None

    @model_validator(mode="after")
    def _complete(self):
        if self.efficiency_before is not None or self.efficiency_after is not None:
            if self.fuel_after not in (None, self.fuel):
                raise _conflict("fuel_after", "efficiency_before, efficiency_after (same fuel)")
            self._one_way(
                ["amount_before", "efficiency_before", "efficiency_after", "fuel_after"],
                optional=("fuel_after",),
            )
        else:
            self._one_way(["amount_before", "amount_after", "fuel_after"], optional=("fuel_after",))
        return self


EquipmentInput = Annotated[Lighting | Electricity | Fuel, Field(discriminator="kind")]
INPUT = TypeAdapter(EquipmentInput)
KINDS = ("lighting", "electricity", "fuel")


# --- the estimate ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One line of working: a locale key under co2.working and its (exact) figures."""

    key: str
    params: dict


@dataclass(frozen=True)
class UsedFactor:
    id: str  # "electricity.substitute", "fuel.kerosene", or "electricity.own" (given factor)
    value: Decimal
    unit: str
    source: str
    year: str


@dataclass(frozen=True)
class Estimate:
    before_t: Decimal
    after_t: Decimal
    factors: tuple[UsedFactor, ...]
    working: tuple[Step, ...]

    @property
    def reduction_t(self) -> Decimal:
        return self.before_t - self.after_t

    @property
    def reduction_ratio(self) -> Decimal | None:
        """The cut as a fraction of the figure before (None when there was nothing to cut)."""
        return _ratio(self.before_t, self.after_t)


def _ratio(before: Decimal, after: Decimal) -> Decimal | None:
    return None if before == 0 else (before - after) / before


@dataclass
class _Working:
    fs: FactorSet
    own: Decimal | None
    steps: list[Step] = field(default_factory=list)
    used: dict[str, UsedFactor] = field(default_factory=dict)

    def step(self, key: str, **params) -> None:
        self.steps.append(Step(key, params))

    def factor(self, source: str) -> UsedFactor:
        """The factor for a fuel id or electricity, recorded once in the order first used."""
        if source == ELECTRICITY and self.own is not None:
            f = UsedFactor("electricity.own", self.own, "t-CO2/kWh", "", "")
        elif source == ELECTRICITY:
            name = self.fs.electricity.default
            e = self.fs.electricity.factors[name]
            f = UsedFactor(f"electricity.{name}", e.value, e.unit, e.source, e.year)
        else:
            e = self.fs.fuels[source]
            f = UsedFactor(f"fuel.{source}", e.value, e.unit, e.source, e.year)
        self.used.setdefault(f.id, f)
        return f

    def tonnes(self, when: str, amount: Decimal, source: str) -> Decimal:
        f = self.factor(source)
        t = amount * f.value
        per = f.unit.split("/", 1)[1]
        self.step(f"emission_{when}", amount=amount, per=per, factor=f.value, unit=f.unit, t=t)
        return t


def _kwh_lighting(w: _Working, x: Lighting) -> tuple[Decimal, Decimal]:
    if x.kwh_before is not None:
        return x.kwh_before, x.kwh_after
    out = []
    for when, n, watts in (
        ("before", x.fixtures, x.watts_before),
        ("after", x.fixtures if x.fixtures_after is None else x.fixtures_after, x.watts_after),
    ):
        kwh = n * watts * x.hours_per_day * x.days_per_year / 1000
        w.step(
            f"lighting_{when}",
            fixtures=n,
            watts=watts,
            hours=x.hours_per_day,
            days=x.days_per_year,
            kwh=kwh,
        )
        out.append(kwh)
    return out[0], out[1]


def _kwh_electricity(w: _Working, x: Electricity) -> tuple[Decimal, Decimal]:
    if x.kwh_before is not None:
        return x.kwh_before, x.kwh_after
    before = x.rated_kw * x.load_factor * x.hours_per_day * x.days_per_year
    w.step(
        "rated_before",
        kw=x.rated_kw,
        load=x.load_factor,
        hours=x.hours_per_day,
        days=x.days_per_year,
        kwh=before,
    )
    with localcontext(Context(prec=28)):  # same heat or cold delivered, better COP: inexact
        after = before * x.cop_before / x.cop_after
    cops = {"cop_before": x.cop_before, "cop_after": x.cop_after}
    w.step("cop_after", kwh_before=before, kwh=after, **cops)
    return before, after


def estimate(data: Lighting | Electricity | Fuel | dict, on: dt.date) -> Estimate:
    """The estimate for one piece of equipment. A dict is validated first (pydantic
    ValidationError on bad input: the caller names the field)."""
    x = INPUT.validate_python(data) if isinstance(data, dict) else data
    given = [v for v in x.model_dump().values() if isinstance(v, Decimal)]
    with localcontext(_wide(given)):
        return _estimate(x, on)


def _wide(values: list[Decimal]) -> Context:
    """Enough digits for every product of the inputs to stay exact (28 could round a long one);
    only the divisions by an efficiency or COP ratio are rounded, at 28 significant digits."""
    digits = sum(len(v.as_tuple().digits) + abs(v.as_tuple().exponent) for v in values)
    return Context(prec=max(28, digits + 20))


def _estimate(x: Lighting | Electricity | Fuel, on: dt.date) -> Estimate:
    w = _Working(factor_set(on), x.factor)
    if isinstance(x, Fuel):
        before = w.tonnes("before", x.amount_before, x.fuel)
        if x.efficiency_before is not None:
            with localcontext(Context(prec=28)):  # the one inexact step
                amount_after = x.amount_before * x.efficiency_before / x.efficiency_after
            w.step(
                "efficiency_after",
                amount_before=x.amount_before,
                per=w.factor(x.fuel).unit.split("/", 1)[1],
                eff_before=x.efficiency_before,
                eff_after=x.efficiency_after,
                amount=amount_after,
            )
            after = w.tonnes("after", amount_after, x.fuel)
        else:
            after = w.tonnes("after", x.amount_after, x.fuel_after or x.fuel)
    else:
        kwh = _kwh_lighting(w, x) if isinstance(x, Lighting) else _kwh_electricity(w, x)
        before = w.tonnes("before", kwh[0], ELECTRICITY)
        after = w.tonnes("after", kwh[1], ELECTRICITY)
    w.step("reduction", before=before, after=after, cut=before - after, ratio=_ratio(before, after))
    return Estimate(before, after, tuple(w.used.values()), tuple(w.steps))


# --- what 第4 asks of the figures --------------------------------------------------------------
def co2_projects(on: dt.date) -> dict:
    """The project types with a CO2 test in the ruleset in force: id -> Project."""
    rs, _ = ruleset_for(on)
    return {k: p for k, p in rs.projects.items() if p.min_reduction_t is not None}


def meets(before_t: Decimal, after_t: Decimal, on: dt.date) -> dict[str, bool]:
    """Which project types' CO2 test the figures pass (exact; inclusive thresholds)."""
    return {k: any(p.reduction_tests(before_t, after_t)) for k, p in co2_projects(on).items()}
