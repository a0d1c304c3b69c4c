"""evaluate(answers, on) -> Verdict. Each criterion is three-valued (True / False / None = unknown)
and reports which unanswered fields could still change it; the verdict combines them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from rules.clock import today
from rules.model import (
    Answers,
    Delivery,
    EntityType,
    Equipment,
    Industry,
    ProjectType,
    Reason,
    Verdict,
    shallow_copy,
)
from rules.ruleset import Ruleset, SizeRow, exact_for, ruleset_for

KG = Decimal("0.001")  # a target and a shortfall are shown to the kilogram


@dataclass
class Check:
    ok: bool | None
    clause: str
    key: str
    params: dict = field(default_factory=dict)
    needs: list[str] = field(default_factory=list)  # unanswered fields that could still decide it


def _or(*values: bool | None) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _all_rows(results: list[bool | None]) -> bool | None:
    """An unknown industry is decided only when every candidate row agrees."""
    if all(r is True for r in results):
        return True
    return False if all(r is False for r in results) else None


def _flag(value: bool | None, field_name: str, clause: str, bad_when: bool) -> Check:
    """A yes/no requirement: the answer `bad_when` disqualifies."""
    if value is None:
        return Check(None, clause, f"reason.{field_name}.unknown", needs=[field_name])
    ok = value is not bad_when
    return Check(ok, clause, f"reason.{field_name}.{'ok' if ok else 'bad'}")


def _size(a: Answers, rs: Ruleset, clause: str, use_capital: bool) -> Check:
    """The size table: capital OR employees within the industry's row (individuals: employees
    only)."""
    rows = rs.size_limits.rows
    candidates = [rows[a.industry]] if a.industry else list(rows.values())
    capital = a.capital_yen if use_capital else None

    def fits_capital(row: SizeRow) -> bool | None:
        if not use_capital:
            return False
        return None if capital is None else capital <= row.capital_max_yen

    def fits_employees(row: SizeRow) -> bool | None:
        return None if a.employees is None else a.employees <= row.employees_max

    ok = _all_rows([_or(fits_capital(r), fits_employees(r)) for r in candidates])
    params: dict = {"capital_yen": capital, "employees": a.employees}
    if a.industry:
        row = candidates[0]
        params |= {
            "industry": a.industry.value,
            "row": row.row,
            "capital_max_yen": row.capital_max_yen,
            "employees_max": row.employees_max,
        }
    if ok is True:
        by_capital = all(fits_capital(r) for r in candidates)
        key = "reason.applicant.size_capital" if by_capital else "reason.applicant.size_employees"
        return Check(True, clause, key + ("" if a.industry else "_any"), params)
    if ok is False:
        key = "reason.applicant.size_over" + ("" if use_capital else "_employees")
        return Check(False, clause, key + ("" if a.industry else "_any"), params)
    needs = []
    if a.industry is None:
        needs.append("industry")
    if use_capital and capital is None:
        needs.append("capital_yen")
    if a.employees is None and not all(fits_capital(r) for r in candidates):
        needs.append("employees")
    return Check(None, clause, "reason.applicant.size_unknown", params, needs)


def _association(a: Answers, rs: Ruleset, clause: str) -> Check:
    """第2 2 (6): employees within 「中小企業基本法第２条に規定する主たる業種に記載の従業員規模」.
    The clause cites the law, whose 第2条 has four groups, not the 別表's extra rows (rubber
    products 900, software 300, hotels 200). Both readings agree below the smaller figure and
    above the larger one; between them the prefecture decides, and nothing more can be asked."""
    rows = rs.size_limits.rows
    candidates = [a.industry] if a.industry else list(rows)

    def reading(industry) -> bool | None | str:
        if a.employees is None:
            return None
        law = rs.sme_law.groups[rows[industry].sme_law_group].employees_max
        table = rows[industry].employees_max
        if a.employees <= min(law, table):
            return True
        return False if a.employees > max(law, table) else "gap"

    results = [reading(i) for i in candidates]
    params: dict = {"employees": a.employees}
    if a.industry:
        row = rows[a.industry]
        group = rs.sme_law.groups[row.sme_law_group]
        params |= {
            "industry": a.industry.value,
            "row": row.row,
            "employees_max": row.employees_max,
            "law_clause": rs.sme_law.clause,
            "law_group": group.name,
            "law_employees_max": group.employees_max,
            "table_clause": rs.size_limits.clause,
        }
        result = results[0]
        if result == "gap":
            return Check(None, clause, "reason.association.gap", params)
        if result is True:
            return Check(True, clause, "reason.association.within", params)
        if result is False:
            differ = group.employees_max != row.employees_max
            return Check(
                False, clause, "reason.association.over" + ("_both" if differ else ""), params
            )
    elif all(r is True for r in results):
        return Check(True, clause, "reason.applicant.size_employees_any", params)
    elif all(r is False for r in results):
        return Check(False, clause, "reason.applicant.size_over_employees_any", params)
    needs = [f for f, v in (("industry", a.industry), ("employees", a.employees)) if v is None]
    return Check(None, clause, "reason.applicant.size_unknown", params, needs)


def _applicant(a: Answers, rs: Ruleset) -> Check:
    """Clause 2-2: is the applicant an SME or one of the listed kinds?"""
    if a.entity_type is None:
        return Check(
            None,
            rs.clauses.applicant,
            "reason.applicant.unknown",
            needs=["entity_type", "blue_return", "industry", "capital_yen", "employees"],
        )
    kind = rs.applicant_kinds[a.entity_type]
    params = {"entity_type": a.entity_type.value}
    if kind.blue_return_clause and a.blue_return:
        return Check(True, kind.blue_return_clause, "reason.applicant.blue_return", params)
    if kind.size_test == "none":
        return Check(True, kind.clause, "reason.applicant.kind", params)
    if kind.size_test == "governor":
        return Check(None, kind.clause, "reason.applicant.governor", params)
    if kind.size_test == "main_industry_employees":
        size = _association(a, rs, kind.clause)
    else:
        size = _size(a, rs, kind.clause, use_capital=kind.size_test == "capital_or_employees")
    size.params |= params
    if kind.blue_return_clause and size.ok is not True:
        if a.blue_return is None:
            # A blue-return proprietor qualifies whatever the size, so the size alone cannot
            # exclude.
            size.ok, size.needs = None, ["blue_return", *size.needs]
            size.key = "reason.applicant.size_unknown"
        elif size.ok is False:  # white return over the limit: (8) has no size test
            size.key = "reason.proprietor.over_white_return" + ("" if a.industry else "_any")
            size.params["blue_return_clause"] = kind.blue_return_clause
    return size


def _project(a: Answers, rs: Ruleset) -> Check:
    """Clause 4 (1)-(3): LED replacement, energy-intensive equipment replacement, or
    cogeneration."""
    if a.project_type is None:
        return Check(
            None,
            rs.clauses.project,
            "reason.project.unknown",
            needs=["project_type", "equipment", "replaces_existing"],
        )
    p = rs.projects.get(a.project_type)
    params = {"project_type": a.project_type.value}
    if p is None:  # not one of 第4 1-3
        return Check(False, rs.clauses.project, "reason.project_other.not_covered", params)
    equip_ok: bool | None = True
    if p.equipment is not None:
        equip_ok = None if a.equipment is None else a.equipment in p.equipment
        if equip_ok is False:
            return Check(
                False,
                rs.clauses.joiner.join((p.clause, p.equipment_clause)),
                "reason.project.equipment_not_listed",
                params | {"equipment": a.equipment.value},
            )
    replace_ok: bool | None = True
    if p.replaces_existing == "required":
        replace_ok = a.replaces_existing
        if replace_ok is False:
            return Check(False, p.clause, "reason.project.not_replacement", params)
    if equip_ok and replace_ok:
        if a.equipment is not None and p.equipment is not None:
            params["equipment"] = a.equipment.value
        return Check(True, p.clause, "reason.project.ok", params)
    needs = [
        f for f, ok in (("equipment", equip_ok), ("replaces_existing", replace_ok)) if ok is None
    ]
    return Check(None, p.clause, "reason.project.incomplete", params, needs)


def _delivery(a: Answers, rs: Ruleset) -> Check:
    clause = rs.excluded_delivery.clause
    if a.delivery is None:
        return Check(None, clause, "reason.delivery.unknown", needs=["delivery"])
    excluded = a.delivery in rs.excluded_delivery.values
    params = {"delivery": a.delivery.value}
    return Check(
        not excluded,
        clause,
        "reason.delivery.excluded" if excluded else "reason.delivery.ok",
        params,
    )


def _co2(a: Answers, rs: Ruleset) -> Check:
    """Clause 4 (1)/(2): a cut of at least N t/yr OR at least the ratio, both inclusive."""
    if a.project_type is None:
        return Check(
            None, rs.clauses.project, "reason.co2.pending", needs=["co2_before_t", "co2_after_t"]
        )
    p = rs.projects.get(a.project_type)
    if p is None:  # the project itself is not covered: no CO2 test to apply
        return Check(None, rs.clauses.project, "reason.project_other.co2_not_applicable")
    if p.min_reduction_t is None:
        return Check(True, p.clause, "reason.co2.not_required")
    clause = p.co2_clause
    limits = {"min_t": p.min_reduction_t, "min_percent": p.min_reduction_ratio * 100}
    before, after = a.co2_before_t, a.co2_after_t
    if before is not None and before == 0:  # almost always a slip: say so
        return Check(False, clause, "reason.co2.nothing_to_cut", limits | {"before": before})
    if before is None or after is None:
        needs = [f for f, v in (("co2_before_t", before), ("co2_after_t", after)) if v is None]
        return Check(None, clause, "reason.co2.unknown", limits, needs)
    by_tonnes, by_ratio = p.reduction_tests(before, after)
    with localcontext(exact_for(before, after)):
        cut = before - after
        percent = (cut * 100 / before).quantize(Decimal("0.1"), "ROUND_DOWN") if cut >= 0 else None
    target = p.target_after_t(before).quantize(KG, "ROUND_DOWN")  # never shown too generous
    params = limits | {"before": before, "after": after, "cut": cut, "percent": percent}
    params |= {"target": target, "short": (after - target).quantize(KG, "ROUND_UP")}
    if by_tonnes or by_ratio:
        key = "reason.co2.by_tonnes" if by_tonnes else "reason.co2.by_ratio"
    elif cut < 0:
        key = "reason.co2.increase"
    elif p.partial_hint:  # e.g. only some of the lights replaced, but the whole building entered
        key = f"reason.co2_partial.{p.partial_hint}"
    else:
        key = "reason.co2.too_small"
    return Check(by_tonnes or by_ratio, clause, key, params)


CRITERIA = {
    "applicant": _applicant,
    "tax_arrears": lambda a, rs: _flag(
        a.tax_arrears, "tax_arrears", rs.standing.tax_arrears.clause, bad_when=True
    ),
    "antisocial_forces": lambda a, rs: _flag(
        a.antisocial_forces,
        "antisocial_forces",
        rs.standing.antisocial_forces.clause,
        bad_when=True,
    ),
    "site_in_tochigi": lambda a, rs: _flag(
        a.site_in_tochigi, "site_in_tochigi", rs.site.clause, bad_when=False
    ),
    "project": _project,
    "delivery": _delivery,
    "co2": _co2,
}


def _json_params(params: dict) -> dict:
    """Decimals become plain strings ("20", "64.1"): exact in JSON and readable in messages."""
    return {
        k: format(v.normalize(), "f") if isinstance(v, Decimal) else v
        for k, v in params.items()
        if v is not None
    }


def _open(checks: dict[str, Check], a: Answers, rs: Ruleset) -> list[str]:
    """Unanswered fields that could still settle some undecided criterion, in asking order."""
    needed = {f for c in checks.values() if c.ok is None for f in c.needs}
    return [f for f in rs.ask_order if f in needed and getattr(a, f) is None]


# Keyed by (answers, date), the answers as their JSON once validated, and also as given when
# the dialog's plain dict (`_plain_key`): that spares validating them again.
_MEMO: dict[tuple, Verdict] = {}  # a dialog step asks about the same answers
_RELEVANT: dict[tuple, tuple[str, ...]] = {}  # relevant_fields, the same way
_OPEN: dict[tuple, tuple[str, ...]] = {}  # the open fields of the answers relevant_fields replays
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
MEMO_SIZE = 4096  # entries kept in each (then forgotten all at once)


def relevant_fields(answers: Answers | dict, on: dt.date | None = None) -> list[str]:
    """The answered fields some criterion still uses, found by replaying the answers in asking
    order as a dialog would. Ignores the overall status on purpose: an answer is kept while a
    knock-out elsewhere is being corrected. Used by the dialog to drop answers that no longer
    apply after one is changed (e.g. capital once the applicant is a medical corporation).
    Remembered by (answers, date) like `evaluate`."""
    fields = _memoised(
        _RELEVANT, answers, on or today(), lambda a, d: tuple(_relevant_fields(a, d))
    )
    return list(fields)


def _memoised(memo: dict, answers: Answers | dict, on: dt.date, compute: Callable) -> Any:
    """`compute(validated answers, on)`, remembered in `memo` by the validated answers' JSON
    and, when they are given as a plain dict, by that dict too (sparing the validation)."""
    plain = _plain_key(answers, on)
    value = memo.get(plain) if plain is not None else None
    if value is None:
        a = answers if isinstance(answers, Answers) else Answers.model_validate(answers)
        key = (a.model_dump_json(exclude_none=True), on)
        value = memo.get(key)
        if value is None:
            value = _remember(memo, key, compute(a, on))
        if plain is not None:
            _remember(memo, plain, value)
    return value


def _plain_key(answers: Answers | dict, on: dt.date) -> tuple | None:
    """A dict of plain JSON values (as the dialog keeps them) as a key, as given: each value
    with its type (`true` is not 1: validation refuses it for a count). None for anything else
    (a Decimal or a float has several spellings of one number: only the validated key)."""
    if type(answers) is not dict:
        return None
    types = tuple(map(type, answers.values()))
    if not _PLAIN_TYPES.issuperset(types):
        return None
    return tuple(answers.items()), types, on


def _remember(memo: dict, key: tuple, value):
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def _relevant_fields(a: Answers, on: dt.date) -> list[str]:
    rs, _ = ruleset_for(on)
    given, kept, parts = a.model_dump(exclude_none=True), {}, []
    while True:
        nxt = next((f for f in _open_after(kept, (on, tuple(parts)), rs) if f in given), None)
        if nxt is None:
            return list(kept)
        value = kept[nxt] = given[nxt]
        parts.append((nxt, type(value), str(value) if type(value) is Decimal else value))


def _open_after(kept: dict, key: tuple, rs: Ruleset) -> tuple[str, ...]:
    """`_open` for the (validated) answers `kept`, remembered by the date and them (`key`:
    each as (field, type, value), a Decimal by its spelling): replaying one conversation's
    answers passes the same first answers at every step."""
    fields = _OPEN.get(key)
    if fields is None:
        partial = Answers.model_validate(kept)
        checks = {name: fn(partial, rs) for name, fn in CRITERIA.items()}
        fields = _remember(_OPEN, key, tuple(_open(checks, partial, rs)))
    return fields


# Answers that decide which other questions exist at all. While one is unknown, `missing` is the
# union over its possible values of what each still-open world needs: so a field that could
# only matter for values already ruled out is never asked.
HUBS = {"entity_type": EntityType, "project_type": ProjectType}


def _status(checks: dict[str, Check]) -> str:
    oks = [c.ok for c in checks.values()]
    return "ineligible" if False in oks else "undetermined" if None in oks else "eligible"


def _missing(a: Answers, rs: Ruleset, checks: dict[str, Check]) -> list[str]:
    if _status(checks) != "undetermined":
        return []
    hub = next((h for h in HUBS if getattr(a, h) is None), None)
    if hub is None:
        return _open(checks, a, rs)
    at = _answers_key(a)
    worlds = {_world(a, at, rs, hub, value) for value in HUBS[hub]}
    needed = {f for _, miss, _ in worlds for f in miss}
    # The hub itself is needed when its value matters, or to settle a status that every
    # world decides but three-valued logic cannot.
    if len(worlds) > 1 or all(status != "undetermined" for status, _, _ in worlds):
        needed.add(hub)
    return [f for f in rs.ask_order if f in needed and getattr(a, f) is None]


# The worlds `_missing` works out, by the ruleset, the answers they add a hub's value to (a
# Decimal by its spelling), the hub and its value: a verdict and the longest way left
# (`most_left`) on the same answers, and the next answers, meet the same worlds.
_WORLDS: dict[tuple, tuple] = {}


# Keyed by their text: a Decimal by its spelling, a code (an Enum, whose hash is Python code)
# by its value. Each answer has its place in the key, and one type there.
_BY_TEXT = frozenset({Decimal, EntityType, Industry, ProjectType, Equipment, Delivery})


def _answers_key(a: Answers) -> tuple:
    return tuple(str(v) if type(v) in _BY_TEXT else v for v in a.__dict__.values())


def _world(a: Answers, at: tuple, rs: Ruleset, hub: str, value) -> tuple:
    """The (status, missing, the criteria's oks) of the answers `a` (`at`: their key) with
    `hub` set to `value`."""
    key = (id(rs), hub, str(value), at)
    known = _WORLDS.get(key)
    if known is None or known[0] is not rs:  # (the ruleset kept: its id is never reused)
        world = _with(a, hub, value)
        checks = {n: fn(world, rs) for n, fn in CRITERIA.items()}
        oks = tuple(c.ok for c in checks.values())
        known = (rs, (_status(checks), tuple(_missing(world, rs, checks)), oks))
        _remember(_WORLDS, key, known)
    return known[1]


def _with(a: Answers, hub: str, value) -> Answers:
    """`a.model_copy(update={hub: value})`, without copy.copy's dispatch."""
    world = shallow_copy(a)
    world.__dict__[hub] = value
    world.__pydantic_fields_set__.add(hub)
    return world


def most_left(answers: Answers | dict, skipped: tuple[str, ...], on: dt.date | None = None) -> int:
    """The most questions still to be asked on any way to a verdict, `skipped` ones not
    counted: the verdict's `missing`; while a hub answer (entity type, project type) is open
    in it, one question for the hub plus the longest of its worlds (each the answers with
    the hub set, asked the same way: the worlds `_missing` works out)."""
    on = on or today()
    missing = remembered_verdict(answers, on).missing
    a = answers if isinstance(answers, Answers) else Answers.model_validate(answers)
    return _most_left(a, ruleset_for(on)[0], missing, skipped)


def _most_left(a: Answers, rs: Ruleset, missing, skipped: tuple[str, ...]) -> int:
    missing = [f for f in missing if f not in skipped]
    hub = next((h for h in HUBS if h in missing), None)
    if hub is None:
        return len(missing)
    at = _answers_key(a)
    return 1 + max(
        _most_left(_with(a, hub, value), rs, _world(a, at, rs, hub, value)[1], skipped)
        for value in HUBS[hub]
    )


def evaluate(answers: Answers | dict, on: dt.date | None = None) -> Verdict:
    """The verdict on `answers` on a date. Remembered by (answers, date): a dialog step asks
    several times, and many chats share their first answers."""
    # a caller may reorder or extend its lists; no caller changes a reason (a deep copy of
    # the verdict costs more than evaluating it)
    copy = shallow_copy(remembered_verdict(answers, on))
    for name in ("reasons", "missing", "warnings"):
        copy.__dict__[name] = list(copy.__dict__[name])
    return copy


def remembered_verdict(answers: Answers | dict, on: dt.date | None = None) -> Verdict:
    """`evaluate` without the copy: the remembered verdict itself, for a caller that only
    reads it (the dialog step) and copies whatever of it it keeps."""
    return _memoised(_MEMO, answers, on or today(), _evaluate)


def _evaluate(a: Answers, on: dt.date) -> Verdict:
    rs, warnings = ruleset_for(on)
    checks = {name: fn(a, rs) for name, fn in CRITERIA.items()}
    reasons = [
        Reason(
            criterion=name,
            status={True: "met", False: "not_met", None: "unknown"}[c.ok],
            clause=c.clause,
            message_key=c.key,
            params=_json_params(c.params),
        )
        for name, c in checks.items()
    ]
    status = _status(checks)
    missing = _missing(a, rs, checks)
    if status == "eligible":
        warnings.append(
            {
                "key": "warning.final_decision",
                "params": {"clause": rs.standing.public_funds.clause},
            }
        )
    applicant = checks["applicant"]
    caveat = a.industry and rs.size_limits.rows[a.industry].employees_caveat
    if caveat and applicant.ok and "employees_max" in applicant.params:
        passed_on_employees = applicant.key in (
            "reason.applicant.size_employees",
            "reason.association.within",
        )
        if passed_on_employees:
            warnings.append(
                {
                    "key": f"warning.{caveat}",
                    "params": {"employees_max": applicant.params["employees_max"]},
                }
            )
    return Verdict(
        status=status, reasons=reasons, missing=missing, ruleset=rs.id, warnings=warnings
    )
