"""Properties of rules.evaluate over generated answers (hypothesis).

Answers are partial: each field is absent (unknown) or a value; money and head counts cluster at
the 別表 limits, tonnes are Decimals with up to three places. The examples the tables in
tests/rules_cases/ check by hand are generalised here:

(a) monotone: answering more never changes a decided verdict or a decided criterion, and never
    adds a field to `missing`;
(b) full answers are decided unless the prefecture must judge the applicant: `other` (第2 2 (9)),
    or an association whose size the two readings of 第2 2 (6) settle differently;
(c) `missing` is empty exactly when the verdict is decided, or when the only open point is the
    prefecture's judgement of the applicant (every other criterion met);
(d) `missing` holds only unanswered fields, each once, in the ruleset's asking order, and answering
    its first field removes that field without adding another;
(e) every field in `missing` can still change the outcome: some completion of the other open
    fields of its criterion makes two of its values give different results; and an unknown
    project type always matters (`other`, outside 第4, makes any open verdict ineligible);
(f) evaluation never raises and always returns one reason per criterion, consistent with the status;
(g) on full answers the status equals an independent reading of the guideline written below.
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rules import Answers, evaluate
from rules.model import Delivery, EntityType, Equipment, Industry, ProjectType
from rules.ruleset import ruleset_for

ON = dt.date(2024, 6, 1)
ASK_ORDER = ruleset_for(ON)[0].ask_order
CRITERIA = [
    "applicant",
    "tax_arrears",
    "antisocial_forces",
    "site_in_tochigi",
    "project",
    "delivery",
    "co2",
]
FIELDS = list(Answers.model_fields)

# 別表, written out again from the guideline (not read from rules/data) for the reference reading.
# 中小企業基本法 第2条's employee figure for each industry's group, which 第2 2 (6) cites.
LAW_HEADS = {
    "manufacturing": 300,
    "construction": 300,
    "transport": 300,
    "other_industry": 300,
    "rubber_products": 300,
    "wholesale": 100,
    "retail": 50,
    "services": 100,
    "software_it": 100,
    "hotel": 100,
}
SIZE = {  # industry: (capital limit in yen, employee limit), both inclusive
    "manufacturing": (300_000_000, 300),
    "construction": (300_000_000, 300),
    "transport": (300_000_000, 300),
    "other_industry": (300_000_000, 300),
    "rubber_products": (300_000_000, 900),
    "wholesale": (100_000_000, 100),
    "retail": (50_000_000, 50),
    "services": (50_000_000, 100),
    "software_it": (300_000_000, 300),
    "hotel": (50_000_000, 200),
}
YEN_LIMITS = sorted({c for c, _ in SIZE.values()})
HEAD_LIMITS = sorted({e for _, e in SIZE.values()} | set(LAW_HEADS.values()))

PROPS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def near(limits: list[int]) -> list[int]:
    return sorted({0, *(x + d for x in limits for d in (-1, 0, 1))})


money = st.one_of(st.sampled_from(near(YEN_LIMITS)), st.integers(0, 10**12))
heads = st.one_of(st.sampled_from(near(HEAD_LIMITS)), st.integers(0, 10**6))
tonnes = st.one_of(
    st.sampled_from(
        [
            Decimal(x)
            for x in (
                "0",
                "5",
                "5.0",
                "6.4",
                "8.0",
                "10",
                "12.5",
                "20",
                "54.1",
                "54.2",
                "64.1",
                "100",
            )
        ]
    ),
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
)

VALUES = {
    "entity_type": st.sampled_from([e.value for e in EntityType]),
    "industry": st.sampled_from([i.value for i in Industry]),
    "blue_return": st.booleans(),
    "capital_yen": money,
    "employees": heads,
    "tax_arrears": st.booleans(),
    "antisocial_forces": st.booleans(),
    "site_in_tochigi": st.booleans(),
    "project_type": st.sampled_from([p.value for p in ProjectType]),
    "equipment": st.sampled_from([e.value for e in Equipment]),
    "replaces_existing": st.booleans(),
    "delivery": st.sampled_from([d.value for d in Delivery]),
    "co2_before_t": tonnes,
    "co2_after_t": tonnes,
}
assert set(VALUES) == set(FIELDS) == set(ASK_ORDER), "a field was added: extend VALUES"

partial_answers = st.fixed_dictionaries({}, optional=VALUES)
full_answers = st.fixed_dictionaries(VALUES)


@st.composite
def answers_and_extension(draw):
    """A partial answer set A and an extension B ⊇ A (some unknown fields of A filled in)."""
    a = draw(partial_answers)
    fill = draw(full_answers)
    extra = (
        draw(st.sets(st.sampled_from([f for f in FIELDS if f not in a])))
        if len(a) < len(FIELDS)
        else set()
    )
    return a, {**a, **{f: fill[f] for f in extra}}


def run(answers: dict, on: dt.date = ON):
    return evaluate(Answers.model_validate(answers), on)


def statuses(verdict) -> dict[str, str]:
    return {r.criterion: r.status for r in verdict.reasons}


# ---------------------------------------------------------------------------------------------
# (a) monotone


@PROPS
@given(answers_and_extension())
def test_answering_more_never_changes_a_decided_verdict(pair):
    a, b = pair
    va, vb = run(a), run(b)
    if va.status != "undetermined":
        assert vb.status == va.status, (a, b)
    sa, sb = statuses(va), statuses(vb)
    for crit in CRITERIA:
        if sa[crit] != "unknown":
            assert sb[crit] == sa[crit], (crit, a, b)
    assert set(vb.missing) <= set(va.missing), (a, b, va.missing, vb.missing)


# ---------------------------------------------------------------------------------------------
# (b) full answers


@PROPS
@given(full_answers)
def test_full_answers_are_decided_unless_the_prefecture_judges_the_applicant(answers):
    verdict = run(answers)
    assert verdict.missing == []
    if not prefecture_judges(answers):
        assert verdict.status != "undetermined", answers
    else:
        assert verdict.status != "eligible"
        assert statuses(verdict)["applicant"] == "unknown"


def prefecture_judges(a: dict) -> bool:
    """(9), or (6) with employees between the law's figure and the 別表 row's (both inclusive
    limits, so strictly above the smaller and at most the larger)."""
    if a.get("entity_type") == "other":
        return True
    if a.get("entity_type") != "general_association" or "industry" not in a:
        return False
    low, high = sorted((LAW_HEADS[a["industry"]], SIZE[a["industry"]][1]))
    return "employees" in a and low < a["employees"] <= high


# ---------------------------------------------------------------------------------------------
# (c) missing is empty exactly when nothing more can be asked


@PROPS
@given(partial_answers)
def test_missing_is_empty_iff_decided_or_only_the_prefectures_judgement_left(answers):
    verdict = run(answers)
    s = statuses(verdict)
    only_prefecture_left = prefecture_judges(answers) and all(
        s[c] == "met" for c in CRITERIA if c != "applicant"
    )
    decided = verdict.status != "undetermined"
    assert (verdict.missing == []) == (decided or only_prefecture_left), (answers, verdict)
    if only_prefecture_left:
        assert verdict.status == "undetermined" and s["applicant"] == "unknown"


# ---------------------------------------------------------------------------------------------
# (d) shape of missing, and answering its first field


@PROPS
@given(partial_answers, st.data())
def test_missing_is_unanswered_ordered_and_shrinks_when_answered(answers, data):
    verdict = run(answers)
    missing = verdict.missing
    assert len(set(missing)) == len(missing)
    assert not set(missing) & set(answers)
    assert missing == [f for f in ASK_ORDER if f in missing]
    if missing:
        first = missing[0]
        after = run({**answers, first: data.draw(VALUES[first], label=first)})
        assert first not in after.missing
        assert set(after.missing) <= set(missing) - {first}


# ---------------------------------------------------------------------------------------------
# (e) every field in missing can still change the outcome

# The criteria read disjoint groups of fields, so a field matters for the verdict exactly when it
# matters for its group's combined result (other criteria are then left as they are, and none of
# them is not_met while the verdict is undetermined).
GROUPS = {
    "applicant": (
        ("applicant",),
        ["entity_type", "blue_return", "industry", "capital_yen", "employees"],
    ),
    "project": (
        ("project", "co2"),
        ["project_type", "equipment", "replaces_existing", "co2_before_t", "co2_after_t"],
    ),
    "tax_arrears": (("tax_arrears",), ["tax_arrears"]),
    "antisocial_forces": (("antisocial_forces",), ["antisocial_forces"]),
    "site_in_tochigi": (("site_in_tochigi",), ["site_in_tochigi"]),
    "delivery": (("delivery",), ["delivery"]),
}
GROUP_OF = {f: g for g, (_, fields) in GROUPS.items() for f in fields}
# Small domains that still reach every behaviour: one kind per size test, one industry per distinct
# row, values just over each distinct limit, and tonnes far outside the generated range below.
DOMAIN = {
    "entity_type": ["company", "sole_proprietor", "general_association", "cooperative", "other"],
    "blue_return": [True, False],
    "industry": ["manufacturing", "rubber_products", "wholesale", "retail", "services", "hotel"],
    "capital_yen": [0, *(c + 1 for c in YEN_LIMITS)],
    "employees": [0, *(e + 1 for e in HEAD_LIMITS)],
    "tax_arrears": [True, False],
    "antisocial_forces": [True, False],
    "site_in_tochigi": [True, False],
    "project_type": [p.value for p in ProjectType],
    "equipment": ["boiler", "other"],
    "replaces_existing": [True, False],
    "delivery": ["purchase", "lease"],
    "co2_before_t": [Decimal(0), Decimal(10**7)],
    "co2_after_t": [Decimal(0), Decimal(10**7)],
}


def group_result(verdict, group: str) -> str:
    s = statuses(verdict)
    results = [s[c] for c in GROUPS[group][0]]
    return "not_met" if "not_met" in results else "unknown" if "unknown" in results else "met"


def can_change_outcome(answers: dict, field: str) -> bool:
    group = GROUP_OF[field]
    others = [f for f in GROUPS[group][1] if f != field and f not in answers]
    for combo in itertools.product(*(DOMAIN[f] for f in others)):
        base = {**answers, **dict(zip(others, combo, strict=True))}
        # Answering it matters when two values differ, or when any value settles the group
        # where leaving it open does not.
        results = {group_result(run({**base, field: v}), group) for v in DOMAIN[field]}
        if len(results | {group_result(run(base), group)}) > 1:
            return True
    return False


# Answers a dialog can reach: the standing questions are unanswered or answered favourably (their
# relevance is trivial), applicant and project fields are anything in the generated range.
GATES = {
    "tax_arrears": st.just(False),
    "antisocial_forces": st.just(False),
    "site_in_tochigi": st.just(True),
    "delivery": st.just("purchase"),
}
open_answers = st.fixed_dictionaries({}, optional={**VALUES, **GATES})
KIND_AND_PROJECT = ("entity_type", "project_type")
open_answers_kind_and_project_known = st.fixed_dictionaries(
    {f: VALUES[f] for f in KIND_AND_PROJECT},
    optional={f: s for f, s in {**VALUES, **GATES}.items() if f not in KIND_AND_PROJECT},
)


def assert_every_missing_field_matters(answers: dict) -> None:
    verdict = run(answers)
    if verdict.status != "undetermined":
        return
    idle = [f for f in verdict.missing if not can_change_outcome(answers, f)]
    assert not idle, f"{answers}: {idle} in missing cannot change the outcome"


@settings(PROPS, max_examples=150)
@given(open_answers_kind_and_project_known)
def test_missing_fields_can_change_the_outcome_once_kind_and_project_are_known(answers):
    assert_every_missing_field_matters(answers)


@settings(PROPS, max_examples=100)
@example({"employees": 10})
@example({"replaces_existing": False})
@given(open_answers)
def test_missing_fields_can_change_the_outcome(answers):
    assert_every_missing_field_matters(answers)


@PROPS
@given(open_answers)
def test_an_unknown_project_type_is_always_asked_while_undecided(answers):
    """A project outside 第4 excludes whatever else was said, so while the verdict is open and
    the project type unknown, the project type is in `missing`."""
    verdict = run(answers)
    if verdict.status == "undetermined" and "project_type" not in answers:
        assert "project_type" in verdict.missing, (answers, verdict.missing)
        assert run({**answers, "project_type": "other"}).status == "ineligible"


# ---------------------------------------------------------------------------------------------
# (f) never raises, well-formed verdicts

wide_tonnes = st.decimals(
    min_value=0, max_value=Decimal("999999999.999"), places=3, allow_nan=False, allow_infinity=False
)
wide_answers = st.fixed_dictionaries(
    {},
    optional={
        **VALUES,
        "capital_yen": st.integers(0, 10**18),
        "employees": st.integers(0, 10**9),
        "co2_before_t": wide_tonnes,
        "co2_after_t": wide_tonnes,
    },
)


@PROPS
@given(wide_answers, st.dates(dt.date(2000, 1, 1), dt.date(2100, 12, 31)))
def test_evaluation_never_raises_and_is_consistent(answers, on):
    verdict = run(answers, on)
    verdict.model_dump_json()
    assert [r.criterion for r in verdict.reasons] == CRITERIA
    s = set(statuses(verdict).values())
    expected = "ineligible" if "not_met" in s else "undetermined" if "unknown" in s else "eligible"
    assert verdict.status == expected
    keys = [w["key"] for w in verdict.warnings]
    assert ("warning.final_decision" in keys) == (verdict.status == "eligible")
    assert ("warning.expired" in keys) == (on > dt.date(2025, 3, 31))
    assert ("warning.before_effective" in keys) == (on < dt.date(2024, 4, 1))
    for r in verdict.reasons:
        assert r.clause and r.message_key.startswith("reason.")


# ---------------------------------------------------------------------------------------------
# (g) full answers against an independent reading of the guideline


def reference_status(a: dict) -> str:
    """第2 2, 第3 1-2, 第4 (本文, 1-3, ただし書) for full answers, written from the text."""
    capital_max, heads_max = SIZE[a["industry"]]
    small = a["employees"] <= heads_max
    applicant = {
        "company": small or a["capital_yen"] <= capital_max,  # (1)・別表 ※
        "sole_proprietor": a["blue_return"] or small,  # (8) or (1) employees
        # (6): the law's group and the 別表 row; where they disagree the prefecture decides
        "general_association": (
            None if prefecture_judges(a) else a["employees"] <= LAW_HEADS[a["industry"]]
        ),
        "other": None,  # (9) governor
    }.get(a["entity_type"], True)  # (2)(3)(4)(5)(7)
    before, after = a["co2_before_t"], a["co2_after_t"]
    cut = before - after

    def reduction(ratio: str) -> bool:
        return before > 0 and (cut >= 10 or cut >= Decimal(ratio) * before)

    project = {
        "led": a["replaces_existing"] and reduction("0.5"),
        "equipment_replacement": (
            a["equipment"] != "other" and a["replaces_existing"] and reduction("0.2")
        ),
        "cogeneration": True,
        "other": False,  # 第4 lists only the three above
    }[a["project_type"]]
    others = [
        not a["tax_arrears"],
        not a["antisocial_forces"],
        a["site_in_tochigi"],
        project,
        a["delivery"] == "purchase",
    ]
    if applicant is False or not all(others):
        return "ineligible"
    return "undetermined" if applicant is None else "eligible"


@PROPS
@given(full_answers)
def test_full_answers_match_the_reference_reading(answers):
    assert run(answers).status == reference_status(answers), answers
