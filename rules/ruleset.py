"""Dated rule data: one YAML file per version of the guideline, picked by the evaluation date.

The loader is strict: every section is a model that forbids unknown keys (a misspelt
`min_reduction_tonnes` must fail, not turn a test off), and the kinds, industries, projects and
equipment named in the data must be exactly the answer model's values."""

from __future__ import annotations

import datetime as dt
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from rules.model import Answers, Delivery, EntityType, Equipment, Industry, ProjectType


def exact_for(*values: Decimal) -> Context:
    """A decimal context wide enough that sums, differences and products of these values are
    exact (the default 28 digits would round a long estimate before a threshold test)."""
    digits = max(len(v.as_tuple().digits) + abs(v.as_tuple().exponent) for v in values)
    return Context(prec=2 * digits + 10, traps=[InvalidOperation, Overflow, DivisionByZero])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(Strict):
    clause: str
    # capital_or_employees: 別表, either suffices (※) | employees: 別表 employee column only |
    # main_industry_employees: (6), the employee size of the main industry (see SmeLaw) |
    # none: no size test | governor: 知事が認める者, the bot cannot settle it
    size_test: Literal[
        "capital_or_employees", "employees", "main_industry_employees", "none", "governor"
    ]
    blue_return_clause: str | None = None  # a blue-return proprietor qualifies whatever its size


class SizeRow(Strict):
    row: str
    capital_max_yen: int
    employees_max: int
    sme_law_group: str  # the group of 中小企業基本法 第2条 the industry falls in
    # a warning (locale key warning.<caveat>) when the applicant passes on this row's employees
    employees_caveat: str | None = None


class SizeLimits(Strict):
    clause: str
    either_clause: str  # 別表 ※: the capital OR the employee test suffices
    rows: dict[Industry, SizeRow]


class SmeLawGroup(Strict):
    name: str  # as the law names it, quoted in texts
    employees_max: int


class SmeLaw(Strict):
    """中小企業基本法 第2条's four groups, which 第2 2 (6) cites directly (not the 別表's rows)."""

    clause: str
    groups: dict[str, SmeLawGroup]


class EmployeeCount(Strict):
    """Who counts as 常時使用する従業員 (for the help text), with its source."""

    basis: str
    short_contract_months_max: int
    seasonal_months_max: int
    source: str


class ClauseRef(Strict):
    clause: str


class Antisocial(Strict):
    clause: str
    basis: str  # the ordinance article 第3 2 rests on


class Standing(Strict):
    tax_arrears: ClauseRef
    antisocial_forces: Antisocial
    public_funds: ClauseRef  # 社会通念上適切: the prefecture's own judgement, never asked


class Project(Strict):
    clause: str
    replaces_existing: Literal["required"] | None = None
    equipment_clause: str | None = None
    equipment: list[Equipment] | None = None
    co2_clause: str | None = None  # the clause of the CO2 tests, e.g. 第4 1 (1)(2)
    min_reduction_t: Decimal | None = None
    min_reduction_ratio: Decimal | None = None
    # a too-small cut adds a hint about entering only what is replaced (locale key
    # reason.co2_partial.<hint>), e.g. lighting where only some fixtures change
    partial_hint: Literal["lighting"] | None = None

    @model_validator(mode="after")
    def _co2_test_is_whole(self) -> Project:
        co2 = (self.co2_clause, self.min_reduction_t, self.min_reduction_ratio)
        if any(v is not None for v in co2) and any(v is None for v in co2):
            raise ValueError("co2_clause, min_reduction_t and min_reduction_ratio go together")
        return self

    def reduction_tests(self, before_t: Decimal, after_t: Decimal) -> tuple[bool, bool]:
        """(cut >= N t, cut >= the ratio): both inclusive, exact, no division at the
        threshold. Nothing before means nothing to cut, by any test."""
        t, ratio = self.min_reduction_t, self.min_reduction_ratio
        with localcontext(exact_for(before_t, after_t, t, ratio)):
            cut = before_t - after_t
            by_ratio = before_t > 0 and cut >= ratio * before_t
            return cut >= t, by_ratio

    def target_after_t(self, before_t: Decimal) -> Decimal:
        """The largest figure after that still passes: whichever test is easier."""
        t, ratio = self.min_reduction_t, self.min_reduction_ratio
        with localcontext(exact_for(before_t, t, ratio)):
            return max(before_t - t, before_t * (1 - ratio))


class ExcludedDelivery(Strict):
    clause: str
    values: list[Delivery]


class Clauses(Strict):
    applicant: str  # cited while the applicant is still open
    project: str  # cited while the project is open, and for a project outside the list
    project_list: str  # the list of covered projects, as one citation
    joiner: str  # joins two clauses in one citation


class Expiry(Strict):
    date: dt.date
    clause: str  # which 附則
    text: str  # the 附則's words, quoted in the warning


class RelatedSupport(Strict):
    fiscal_year: int
    source: str


class Programme(Strict):
    """Facts around the guideline that the texts quote, each with its source."""

    related_support: RelatedSupport


class Ruleset(Strict):
    id: str
    source: str
    effective_from: dt.date
    expiry: Expiry | None = None
    ask_order: list[str]
    clauses: Clauses
    applicant_kinds: dict[EntityType, Kind]
    size_limits: SizeLimits
    sme_law: SmeLaw
    employee_count: EmployeeCount
    standing: Standing
    site: ClauseRef
    projects: dict[ProjectType, Project]
    excluded_delivery: ExcludedDelivery
    programme: Programme

    @model_validator(mode="after")
    def _matches_the_answer_model(self) -> Ruleset:
        def same(what: str, have, want) -> None:
            missing, unknown = sorted(set(want) - set(have)), sorted(set(have) - set(want))
            if missing or unknown:
                raise ValueError(
                    f"{what} must be exactly the answer model's values: "
                    f"missing {missing}, unknown {unknown}"
                )

        same("ask_order", self.ask_order, Answers.model_fields)
        if len(self.ask_order) != len(set(self.ask_order)):
            raise ValueError("ask_order names a field twice")
        same("applicant_kinds", self.applicant_kinds, EntityType)
        same("size_limits.rows", self.size_limits.rows, Industry)
        # `other` is the answer for a project outside the list: it has no entry.
        same("projects", self.projects, set(ProjectType) - {ProjectType.other})
        for industry, row in self.size_limits.rows.items():
            if row.sme_law_group not in self.sme_law.groups:
                raise ValueError(f"size_limits.rows.{industry}: unknown sme_law_group")
        listed = {e for p in self.projects.values() for e in p.equipment or []}
        if listed and Equipment.other in listed:
            raise ValueError("equipment lists name `other`: it is the answer for unlisted kinds")
        return self


class RulesetError(ValueError):
    """A data file that does not validate: the message names the file and every bad key."""


def load(path: Path | str) -> Ruleset:
    """One data file, validated."""
    path = Path(path)
    try:
        return Ruleset.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise RulesetError(f"{path}: {exc}") from None


def data_files() -> list[Path]:
    return sorted(Path(str(resources.files("rules") / "data")).glob("*.yaml"))


@cache
def all_rulesets() -> tuple[Ruleset, ...]:
    """Every data file under rules/data, oldest first."""
    return tuple(sorted((load(f) for f in data_files()), key=lambda r: r.effective_from))


def in_force(on: dt.date) -> Ruleset | None:
    """The newest version whose effective_from is on or before `on` (None before the first)."""
    return next((r for r in reversed(all_rulesets()) if r.effective_from <= on), None)


def ruleset_for(on: dt.date) -> tuple[Ruleset, list[dict]]:
    """The version in force on `on`, and warnings about its dates."""
    chosen = in_force(on)
    warnings: list[dict] = []
    if chosen is None:
        chosen = all_rulesets()[0]
        warnings.append(
            {
                "key": "warning.before_effective",
                "params": {
                    "date": on.isoformat(),
                    "effective_from": chosen.effective_from.isoformat(),
                },
            }
        )
    if chosen.expiry and on > chosen.expiry.date:
        warnings.append(
            {
                "key": "warning.expired",
                "params": {
                    "expires_on": chosen.expiry.date.isoformat(),
                    "expiry_text": chosen.expiry.text,
                    "expiry_clause": chosen.expiry.clause,
                },
            }
        )
    return chosen, warnings


def _plain(d: Decimal) -> str:
    return format(d.normalize(), "f")


def figures(rs: Ruleset) -> dict[str, object]:
    """Every figure and clause the texts quote, by placeholder name. Texts never type them."""
    p = rs.projects
    led, equip = p[ProjectType.led], p[ProjectType.equipment_replacement]
    kinds = rs.applicant_kinds
    j = rs.clauses.joiner
    out: dict[str, object] = {
        "clause_applicant": rs.clauses.applicant,
        "clause_project": rs.clauses.project,
        "clause_project_list": rs.clauses.project_list,
        "clause_size": kinds[EntityType.company].clause,
        "clause_size_either": rs.size_limits.either_clause,
        "clause_size_table": rs.size_limits.clause,
        "clause_blue_return": kinds[EntityType.sole_proprietor].blue_return_clause,
        "clause_tax_arrears": rs.standing.tax_arrears.clause,
        "clause_antisocial_forces": rs.standing.antisocial_forces.clause,
        "antisocial_basis": rs.standing.antisocial_forces.basis,
        "clause_public_funds": rs.standing.public_funds.clause,
        "clause_site": rs.site.clause,
        "clause_led": led.clause,
        "clause_equipment_replacement": equip.clause,
        "clause_equipment_kinds": equip.equipment_clause,
        "clause_replacement": j.join(v.clause for v in p.values() if v.replaces_existing),
        "clause_co2": j.join(v.co2_clause for v in p.values() if v.co2_clause),
        "clause_delivery": rs.excluded_delivery.clause,
        "led_min_t": _plain(led.min_reduction_t),
        "led_min_percent": _plain(led.min_reduction_ratio * 100),
        "equipment_min_t": _plain(equip.min_reduction_t),
        "equipment_min_percent": _plain(equip.min_reduction_ratio * 100),
        "employees_basis": rs.employee_count.basis,
        "short_contract_months": rs.employee_count.short_contract_months_max,
        "seasonal_months": rs.employee_count.seasonal_months_max,
        "related_support_year": rs.programme.related_support.fiscal_year,
        "expires_on": rs.expiry.date.isoformat() if rs.expiry else "",
        "expiry_clause": rs.expiry.clause if rs.expiry else "",
        "expiry_text": rs.expiry.text if rs.expiry else "",
    }
    for industry, row in rs.size_limits.rows.items():
        out[f"{industry.value}_capital_max_yen"] = row.capital_max_yen
        out[f"{industry.value}_employees_max"] = row.employees_max
    return out
