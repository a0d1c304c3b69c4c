"""The rules engine against the YAML tables in tests/rules_cases/ (one test per case).

The format is explained at the top of tests/rules_cases/applicants.yaml. Every key of a case is
checked against a fixed list, so a misspelt expectation fails instead of being silently ignored.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from rules import Answers, evaluate
from rules.model import EntityType, Industry, ProjectType

CASES_DIR = Path(__file__).parent / "rules_cases"
CASE_FILES = ("size_table", "applicants", "associations", "projects", "partial", "dates")
DEFAULT_DATE = dt.date(2024, 6, 1)

CRITERIA = (
    "applicant",
    "tax_arrears",
    "antisocial_forces",
    "site_in_tochigi",
    "project",
    "delivery",
    "co2",
)
CRITERION_STATUSES = {"met", "not_met", "unknown"}
STATUSES = {"eligible", "ineligible", "undetermined"}
FIELDS = tuple(Answers.model_fields)
KEYS = {
    "name",
    "date",
    "answers",
    "status",
    "criteria",
    "clause",
    "message_key",
    "params",
    "missing",
    "missing_first",
    "missing_includes",
    "missing_excludes",
    "warnings",
    "warnings_absent",
    "ruleset",
    "xfail",
}


def load_file(stem: str) -> list[dict]:
    data = yaml.safe_load((CASES_DIR / f"{stem}.yaml").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise ValueError(f"{stem}.yaml: expected a mapping with a 'cases:' list")
    return data["cases"]


def _answers(raw: dict) -> dict:
    """YAML answers to model input: null means unanswered; a float tonnage keeps its digits."""
    out = {}
    for key, value in raw.items():
        if value is None:
            continue
        out[key] = Decimal(str(value)) if isinstance(value, float) else value
    return out


def _date(value) -> dt.date:
    if value is None:
        return DEFAULT_DATE
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _params():
    for stem in CASE_FILES:
        for case in load_file(stem):
            marks = (
                [pytest.mark.xfail(reason=str(case["xfail"]), strict=True)]
                if case.get("xfail")
                else []
            )
            yield pytest.param(stem, case, id=f"{stem}:{case.get('name')}", marks=marks)


def check(case: dict) -> list[str]:
    """Every expectation of the case that does not hold, in words."""
    verdict = evaluate(Answers.model_validate(_answers(case["answers"])), _date(case.get("date")))
    reasons = {r.criterion: r for r in verdict.reasons}
    warning_keys = [w["key"] for w in verdict.warnings]
    problems = []

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    expect(
        verdict.status == case["status"], f"status: expected {case['status']}, got {verdict.status}"
    )
    for crit, status in (case.get("criteria") or {}).items():
        expect(
            reasons[crit].status == status,
            f"criteria.{crit}: expected {status}, got {reasons[crit].status}",
        )
    for crit, clause in (case.get("clause") or {}).items():
        expect(
            str(clause) in reasons[crit].clause,
            f"clause.{crit}: expected to contain {clause!r}, got {reasons[crit].clause!r}",
        )
    for crit, key in (case.get("message_key") or {}).items():
        expect(
            reasons[crit].message_key == key,
            f"message_key.{crit}: expected {key}, got {reasons[crit].message_key}",
        )
    for crit, params in (case.get("params") or {}).items():
        for name, value in params.items():
            got = reasons[crit].params.get(name)
            expect(
                got is not None and str(got) == str(value),
                f"params.{crit}.{name}: expected {value!r}, got {got!r}",
            )
    if "missing" in case:
        expect(
            verdict.missing == list(case["missing"]),
            f"missing: expected {case['missing']}, got {verdict.missing}",
        )
    if "missing_first" in case:
        first = verdict.missing[0] if verdict.missing else None
        expect(
            first == case["missing_first"],
            f"missing_first: expected {case['missing_first']}, got {first}",
        )
    for f in case.get("missing_includes") or []:
        expect(f in verdict.missing, f"missing_includes: {f} not in {verdict.missing}")
    for f in case.get("missing_excludes") or []:
        expect(f not in verdict.missing, f"missing_excludes: {f} is in {verdict.missing}")
    for key in case.get("warnings") or []:
        expect(key in warning_keys, f"warnings: {key} not in {warning_keys}")
    for key in case.get("warnings_absent") or []:
        expect(key not in warning_keys, f"warnings_absent: {key} is in {warning_keys}")
    if "ruleset" in case:
        expect(
            verdict.ruleset == case["ruleset"],
            f"ruleset: expected {case['ruleset']}, got {verdict.ruleset}",
        )
    return problems


def well_formed(case: dict) -> list[str]:
    """Mistakes in the table itself (unknown keys, criteria, fields or values)."""
    errors = [f"unknown key {k!r}" for k in case if k not in KEYS]
    errors += [f"missing key {k!r}" for k in ("name", "answers", "status") if k not in case]
    if case.get("status") not in STATUSES:
        errors.append(f"status must be one of {sorted(STATUSES)}")
    for key in ("criteria", "clause", "message_key", "params"):
        errors += [
            f"{key}: unknown criterion {c!r}" for c in case.get(key) or {} if c not in CRITERIA
        ]
    errors += [
        f"criteria: bad status {s!r}"
        for s in (case.get("criteria") or {}).values()
        if s not in CRITERION_STATUSES
    ]
    for key in ("missing", "missing_includes", "missing_excludes"):
        errors += [f"{key}: unknown field {f!r}" for f in case.get(key) or [] if f not in FIELDS]
    if "missing_first" in case and case["missing_first"] not in FIELDS:
        errors.append(f"missing_first: unknown field {case['missing_first']!r}")
    try:
        Answers.model_validate(_answers(case.get("answers") or {}))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        errors.append(f"answers: {exc}")
    return errors


@pytest.mark.parametrize(("stem", "case"), list(_params()))
def test_case(stem: str, case: dict):
    errors = well_formed(case)
    assert not errors, f"{stem}.yaml「{case.get('name')}」is malformed: " + "; ".join(errors)
    problems = check(case)
    assert not problems, (
        f"{stem}.yaml「{case['name']}」\n  answers: {case['answers']}\n  " + "\n  ".join(problems)
    )


@pytest.mark.parametrize("stem", CASE_FILES)
def test_case_file_is_not_empty_and_names_are_unique(stem: str):
    cases = load_file(stem)
    assert len(cases) >= 5, f"{stem}.yaml has only {len(cases)} cases"
    names = [c.get("name") for c in cases]
    assert all(isinstance(n, str) and n for n in names)
    assert len(set(names)) == len(names), "duplicate names: " + ", ".join(
        sorted({n for n in names if names.count(n) > 1})
    )


def test_every_case_file_is_listed():
    """A new YAML file in rules_cases/ must be added to CASE_FILES, or it would never run."""
    assert sorted(p.stem for p in CASES_DIR.glob("*.yaml")) == sorted(CASE_FILES)


def test_size_table_covers_every_industry_row():
    industries = {c["answers"].get("industry") for c in load_file("size_table")}
    assert industries == {i.value for i in Industry}


def test_projects_cover_every_project_equipment_and_delivery():
    answers = [c["answers"] for c in load_file("projects")]
    assert {a.get("project_type") for a in answers} >= {p.value for p in ProjectType}
    assert {a.get("equipment") for a in answers} >= {
        "boiler",
        "industrial_furnace",
        "air_conditioning",
        "private_generator",
        "other",
    }
    for project in ("led", "equipment_replacement", "cogeneration"):
        assert {a.get("delivery") for a in answers if a.get("project_type") == project} >= {
            "purchase",
            "lease",
            "esco",
        }, project


def test_applicants_cover_every_entity_kind():
    kinds = {c["answers"].get("entity_type") for c in load_file("applicants")}
    assert kinds >= {e.value for e in EntityType}
