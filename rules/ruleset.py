"""Dated rule data: one YAML file per version of the guideline, picked by the evaluation date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel


class Kind(BaseModel):
    clause: str
    size_test: Literal["capital_or_employees", "employees", "none", "governor"]
    blue_return: dict | None = None


class SizeRow(BaseModel):
    row: str
    capital_max_yen: int
    employees_max: int


class SizeLimits(BaseModel):
    clause: str
    rows: dict[str, SizeRow]


class Project(BaseModel):
    clause: str
    replaces_existing: Literal["required"] | None = None
    equipment_clause: str | None = None
    equipment: list[str] | None = None
    min_reduction_t: Decimal | None = None
    min_reduction_ratio: Decimal | None = None

    def reduction_tests(self, before_t: Decimal, after_t: Decimal) -> tuple[bool, bool]:
        """(cut >= N t, cut >= the ratio): both inclusive, exact, no division at the
        threshold. Nothing before means nothing to cut, by any test."""
        cut = before_t - after_t
        by_ratio = before_t > 0 and cut >= self.min_reduction_ratio * before_t
        return cut >= self.min_reduction_t, by_ratio

    def target_after_t(self, before_t: Decimal) -> Decimal:
        """The largest figure after that still passes: whichever test is easier."""
        return max(before_t - self.min_reduction_t, before_t * (1 - self.min_reduction_ratio))


class Ruleset(BaseModel):
    id: str
    source: str
    effective_from: dt.date
    expires_on: dt.date | None = None
    expires_clause: str | None = None
    ask_order: list[str]
    clauses: dict[str, str]
    applicant_kinds: dict[str, Kind]
    size_limits: SizeLimits
    standing: dict[str, dict]
    site: dict
    projects: dict[str, Project]
    excluded_delivery: dict


@cache
def all_rulesets() -> tuple[Ruleset, ...]:
    """Every data file under rules/data, oldest first."""
    files = resources.files("rules") / "data"
    loaded = [
        Ruleset.model_validate(yaml.safe_load(f.read_text(encoding="utf-8")))
        for f in files.iterdir()
        if f.name.endswith(".yaml")
    ]
    return tuple(sorted(loaded, key=lambda r: r.effective_from))


def ruleset_for(on: dt.date) -> tuple[Ruleset, list[dict]]:
    """The version in force on `on`, and warnings about its dates."""
    versions = all_rulesets()
    in_force = [r for r in versions if r.effective_from <= on]
    warnings: list[dict] = []
    if not in_force:
        chosen = versions[0]
        warnings.append(
            {
                "key": "warning.before_effective",
                "params": {
                    "date": on.isoformat(),
                    "effective_from": chosen.effective_from.isoformat(),
                },
            }
        )
    else:
        chosen = in_force[-1]
    if chosen.expires_on and on > chosen.expires_on:
        warnings.append(
            {
                "key": "warning.expired",
                "params": {
                    "expires_on": chosen.expires_on.isoformat(),
                    "clause": chosen.expires_clause or "",
                },
            }
        )
    return chosen, warnings
