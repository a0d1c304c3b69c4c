"""The owners' typed answers (tests/data/understanding/*.yaml, written with the reader) through
the whole dialog: each case is sent with `step` to a state awaiting its question, and what the
dialog then RECORDS is judged, read-back included (the owner confirms a read-back only when it
says what the text says; otherwise they answer 違う and nothing is recorded).

Prints two figures (`pytest -s`): wrong recordings (a value in the answers that the text does
not say, or any value where the case says nothing may be recorded: must be 0) and the share of
answers recorded as the text says from the one message (a confirmed read-back included); and
lists the other questions a message filled that its case does not list, for a reviewer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
import yaml

from dialogs.engine import step
from dialogs.io import State, UserInput
from dialogs.questions import questions

ON = dt.date(2024, 6, 1)
DATA = Path(__file__).parent / "data" / "understanding"
TO_PROJECT = [
    "entity_type:medical_corporation",
    "tax_arrears:false",
    "antisocial_forces:false",
    "site_in_tochigi:true",
]
LED = [*TO_PROJECT, "project_type:led", "replaces_existing:true", "delivery:purchase"]
PATHS = {  # button presses (or typed figures) leading to each question, in a plausible context
    "entity_type": [],
    "blue_return": ["entity_type:sole_proprietor"],
    "industry": ["entity_type:company"],
    "capital_yen": ["entity_type:company", "industry:manufacturing"],
    "employees": ["entity_type:company", "industry:retail", "1億円"],
    "tax_arrears": TO_PROJECT[:1],
    "antisocial_forces": TO_PROJECT[:2],
    "site_in_tochigi": TO_PROJECT[:3],
    "project_type": TO_PROJECT,
    "equipment": [*TO_PROJECT, "project_type:equipment_replacement"],
    "replaces_existing": [*TO_PROJECT, "project_type:led"],
    "delivery": [*TO_PROJECT, "project_type:cogeneration"],
    "co2_before_t": LED,
    "co2_after_t": [*LED, "30トン"],
}


def _load(folder: Path) -> list[tuple[str, dict]]:
    return [
        (qid, case)
        for qid in questions()
        if (folder / f"{qid}.yaml").exists()
        for case in yaml.safe_load((folder / f"{qid}.yaml").read_text("utf-8"))
    ]


SETS = {"cases": _load(DATA), "held-out": _load(DATA / "heldout")}  # held-out: written blind
CASES = [c for cases in SETS.values() for c in cases]
pytestmark = pytest.mark.skipif(not CASES, reason="no understanding cases yet")


def send(state: State, text: str) -> State:
    inp = UserInput(choice=text) if ":" in text else UserInput(text=text)
    return step(state, inp, on=ON)[0]


@cache
def awaiting(qid: str) -> State:
    s = send(State(), "/start")
    for move in PATHS[qid]:
        s = send(s, move)
    assert s.awaiting == qid and s.phase == "asking", (qid, s.awaiting)
    return s


def same(got, expected) -> bool:
    """Equal as answers: yes/no by identity, figures exactly (12.5 == "12.50"), choices as text."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return got is expected
    try:
        return Decimal(str(got)) == Decimal(str(expected))
    except ArithmeticError:
        return got == expected


def truth(qid: str, case: dict, field: str):
    """What the text says for `field`, or None when it says nothing the dialog may record."""
    if field == qid:
        return None if "ask" in case else case.get("value", case.get("confirm"))
    return (case.get("also") or {}).get(field)


def within(value, bound) -> bool:
    op, n = bound
    v, n = Decimal(str(value)), Decimal(str(n))
    return {"<": v < n, "<=": v <= n, ">": v > n, ">=": v >= n}[op]


def judge(qid: str, case: dict) -> tuple[str, list, list]:
    """("ok" | "missed" | "wrong", the wrong recordings, the other questions filled that the
    case does not list: the data checks `also` only where given, so these are shown, not
    judged)."""
    before = awaiting(qid)
    after = send(before, case["text"])
    if after.phase == "confirming":
        said = truth(qid, case, after.confirming["field"])
        if said is not None and same(after.confirming["value"], said):
            after = send(after, "そのとおり")
        else:
            after = send(after, "違う")  # a wrong reading read back: the owner says so
    new = {f: v for f, v in after.answers.items() if f not in before.answers}
    wrong, unlisted = [], []
    for field, value in new.items():
        said = truth(qid, case, field)
        if field == qid and case.get("ask") == "bound" and field in after.bounds:
            ok = within(value, after.bounds[field])  # a bound that settles it, kept as such
        elif field != qid and field not in (case.get("also") or {}):
            unlisted.append((field, value))
            continue
        else:
            ok = said is not None and same(value, said)
        if not ok:
            wrong.append((field, value))
    if wrong:
        return "wrong", wrong, unlisted
    return ("ok" if "ask" in case or qid in new else "missed"), [], unlisted


@pytest.mark.parametrize(("qid", "case"), CASES, ids=[f"{q}:{c['text']}" for q, c in CASES])
def test_no_case_is_recorded_as_something_it_does_not_say(qid, case):
    verdict, wrong, _ = judge(qid, case)
    assert verdict != "wrong", wrong


@pytest.mark.parametrize("name", SETS)
def test_figures(name):
    results = [(qid, case, *judge(qid, case)) for qid, case in SETS[name]]
    wrong = [(qid, c["text"], w) for qid, c, j, w, _ in results if j == "wrong"]
    answers = [j for _, c, j, _, _ in results if "ask" not in c]
    share = answers.count("ok") / len(answers)
    unlisted = [(c["text"], u) for _, c, _, _, u in results if u]
    print(
        f"\ndialog ({name}): {len(results)} typed answers through step, "
        f"wrong recordings {len(wrong)}, recorded as said from one message "
        f"{share:.1%} of {len(answers)} answers; "
        f"{len(unlisted)} messages also filled questions their case does not list:"
    )
    for text, fills in unlisted:
        print(f"  {text} -> {fills}")
    assert wrong == []
    assert share >= 0.9
