"""The step's shortcuts (issue 14) change nothing: the step never changes its argument, its
copy of the state shares nothing with it, and every remembered result (readings of typed text,
verdicts, relevant fields, rendered figures) is the one computed afresh. Bounded memos."""

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

import locales
from dialogs import engine, understanding
from dialogs import questions as questions_module
from dialogs.engine import step
from dialogs.io import State, UserInput, copied
from rules import engine as rules_engine
from rules import evaluate, relevant_fields
from rules.clock import texts_date, texts_on, today
from rules.model import Answers, shallow_copy

ON = dt.date(2024, 6, 1)
SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))
UNDERSTANDING = sorted((Path(__file__).parent / "data" / "understanding").glob("*.yaml"))


def forget_everything() -> None:
    """Every memo the step reads, emptied: what follows is computed afresh."""
    understanding._remembered.cache_clear()
    rules_engine._MEMO.clear()
    rules_engine._RELEVANT.clear()
    rules_engine._OPEN.clear()
    rules_engine._WORLDS.clear()
    engine._most_left.cache_clear()
    engine._left_by_items.cache_clear()
    engine._label_key.cache_clear()
    locales._figures_on.cache_clear()
    locales._TEXTS.clear()
    engine._rendered.cache_clear()
    questions_module._FITS.clear()


def containers(value, seen=None) -> dict[int, object]:
    """id -> every mutable object inside a value (lists, dicts, sets, models)."""
    seen = {} if seen is None else seen
    if isinstance(value, BaseModel):
        seen[id(value)] = value
        for v in value.__dict__.values():
            containers(v, seen)
        seen[id(value.__pydantic_fields_set__)] = value.__pydantic_fields_set__
    elif isinstance(value, dict):
        seen[id(value)] = value
        for v in value.values():
            containers(v, seen)
    elif isinstance(value, list | set):
        seen[id(value)] = value
        for v in value:
            containers(v, seen)
    elif isinstance(value, tuple):
        for v in value:
            containers(v, seen)
    return seen


def pure_step(state: State, inp: UserInput, on=ON):
    """step, checking that it leaves its argument as it was and shares nothing with it."""
    before = state.model_dump_json()
    snapshot = state.model_copy(deep=True)
    new, replies = step(state, inp, on=on)
    assert state.model_dump_json() == before
    assert state == snapshot
    shared = containers(state).keys() & containers(new).keys()
    assert not shared, [containers(state)[i] for i in shared]
    return new, replies


def scenario_inputs(path: Path):
    """A scenario's inputs, fed straight to step: typed text, or the offered button pressed."""
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    on = scenario.get("date") or ON
    state = State()
    for n, stp in enumerate(scenario["steps"]):
        if n == 0 and "say" not in stp and "press" not in stp:
            inp = UserInput(text="/start")
        elif "press" in stp:
            value = next(c.value for c in state.offered if c.label == stp["press"])
            inp = UserInput(choice=value)
        else:
            inp = UserInput(text=str(stp["say"]))
        yield state, inp, on
        state, _ = step(state, inp, on=on)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_a_step_never_changes_its_argument_nor_shares_with_it(path):
    for state, inp, on in scenario_inputs(path):
        pure_step(state, inp, on)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_remembered_results_are_those_computed_afresh(path):
    steps = list(scenario_inputs(path))
    warm = [step(s, i, on=on) for s, i, on in steps]  # the memos full of this very dialog
    for (s, i, on), (state, replies) in zip(steps, warm, strict=True):
        forget_everything()
        assert step(s, i, on=on) == (state, replies)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(
                [
                    "/start",
                    "/back",
                    "/summary",
                    "/skip",
                    "/restart",
                    "会社",
                    "製造業",
                    "3億円",
                    "約80名",
                    "いいえ",
                    "県外です",
                    "そのとおり",
                    "LED",
                    "わからない",
                    "12.5t",
                    "1",
                    "2",
                ]
            ),
        ),
        max_size=14,
    )
)
def test_any_input_sequence_leaves_every_argument_as_it_was(inputs):
    s = step(State(), UserInput(text="/start"), on=ON)[0]
    for text in inputs:
        s, _ = pure_step(s, UserInput(text=text))


def test_the_copy_of_a_state_is_a_deep_copy_without_what_a_step_sets_anew():
    s = State()
    for text in ["/start", "会社", "製造業", "3億円", "わからない"]:
        s = step(s, UserInput(text=text), on=ON)[0]
    s.co2 = {"values": {"a": [1, {"b": "2"}]}, "at": None}
    s.confirming = {"field": "x", "note": ["k", {"p": 1}], "bound": None}
    deep = s.model_copy(deep=True)
    same = copied(s)
    assert same == deep and same.model_fields_set == deep.model_fields_set
    assert not containers(s).keys() & containers(same).keys()
    assert engine.working_copy(s) == deep.model_copy(update={"offered": None, "last": None})
    light = shallow_copy(s)
    assert light == s and light.__dict__ is not s.__dict__
    assert light.model_fields_set == s.model_fields_set
    assert light.model_fields_set is not s.model_fields_set


def readings_cases():
    for path in UNDERSTANDING:
        for case in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            yield path.stem, case["text"]


def test_a_remembered_reading_is_the_one_read_afresh():
    understanding._remembered.cache_clear()
    for qid, text in readings_cases():
        fresh = understanding._understand(qid, text, (), "ja")
        assert understanding.understand(qid, text, {}, "ja") == fresh  # first: read
        assert understanding.understand(qid, text, {}, "ja") == fresh  # then: remembered
    assert understanding._remembered.cache_info().hits > 0


def test_a_reading_depends_on_which_other_questions_are_still_open():
    text = "製造業で従業員は20人です"
    open_ = understanding.understand("industry", text, {}, "ja")
    answered = understanding.understand("industry", text, {"employees": 5}, "ja")
    assert ("employees", 20) in open_.also
    assert answered.also == ()
    assert understanding.understand("industry", text, {}, "ja") == open_


def test_a_remembered_readings_note_is_the_callers_own():
    r = understanding.understand("industry", "美容室", {}, "ja")
    r.note[1]["word"] = "changed"
    again = understanding.understand("industry", "美容室", {}, "ja")
    assert again.note[1]["word"] != "changed"


def test_the_readings_remembered_are_bounded():
    understanding._remembered.cache_clear()
    size = understanding.READINGS_KEPT
    assert understanding._remembered.cache_info().maxsize == size
    for n in range(size + 50):
        understanding.understand("employees", f"{n}人", {}, "ja")
    assert understanding._remembered.cache_info().currsize == size
    long = "従業員は" + "とても" * understanding.LONGEST_KEPT + "20人です"
    before = understanding._remembered.cache_info().currsize
    understanding._remembered.cache_clear()
    assert understanding.understand("employees", long, {}, "ja").value == 20
    assert understanding._remembered.cache_info().currsize == 0 < before


def test_verdicts_remembered_by_the_plain_answers_are_those_computed_afresh():
    cases = [
        {},
        {"entity_type": "company"},
        {"entity_type": "company", "industry": "retail", "capital_yen": 30_000_000},
        {"capital_yen": 30_000_000, "industry": "retail", "entity_type": "company"},
        {"entity_type": "sole_proprietor", "employees": 5, "blue_return": True},
        {"project_type": "led", "co2_before_t": "64.1", "co2_after_t": "54.1"},
        {"project_type": "led", "co2_before_t": 64.1, "co2_after_t": 54.1},
    ]
    for answers in cases * 2:  # the second time from the memo
        fresh = rules_engine._evaluate(Answers.model_validate(answers), ON)
        assert evaluate(answers, on=ON) == fresh
        assert evaluate(Answers.model_validate(answers), on=ON) == fresh
        assert relevant_fields(answers, on=ON) == rules_engine._relevant_fields(
            Answers.model_validate(answers), ON
        )
        rules_engine._OPEN.clear()  # the replay's steps worked out afresh
        assert relevant_fields(answers, on=ON) == rules_engine._relevant_fields(
            Answers.model_validate(answers), ON
        )


def test_true_is_never_remembered_as_one():
    assert evaluate({"employees": 1}, on=ON).status == "undetermined"
    assert relevant_fields({"employees": 1}, on=ON) is not None
    for call in (evaluate, relevant_fields):
        with pytest.raises(ValidationError):
            call({"employees": True}, on=ON)


def test_remembered_verdicts_hand_out_their_own_lists():
    v = evaluate({"entity_type": "company"}, on=ON)
    v.missing.clear()
    v.reasons.clear()
    fields = relevant_fields({"entity_type": "company"}, on=ON)
    fields.append("industry")
    assert evaluate({"entity_type": "company"}, on=ON).missing
    assert evaluate({"entity_type": "company"}, on=ON).reasons
    assert relevant_fields({"entity_type": "company"}, on=ON) == ["entity_type"]


def test_the_rules_memos_are_bounded():
    rules_engine._MEMO.clear()
    rules_engine._RELEVANT.clear()
    for n in range(rules_engine.MEMO_SIZE):
        answers = {"entity_type": "company", "employees": n}
        evaluate(answers, on=ON)
        relevant_fields(answers, on=ON)
    assert len(rules_engine._MEMO) <= rules_engine.MEMO_SIZE
    assert len(rules_engine._RELEVANT) <= rules_engine.MEMO_SIZE
    assert len(rules_engine._OPEN) <= rules_engine.MEMO_SIZE
    assert len(rules_engine._WORLDS) <= rules_engine.MEMO_SIZE


def test_texts_on_nests_and_restores():
    other = dt.date(2025, 1, 1)
    with texts_on(ON):
        assert texts_date() == ON
        with texts_on(other):
            assert texts_date() == other
        assert texts_date() == ON
    assert texts_date() == today()


def test_a_text_without_placeholders_is_the_catalogue_text_and_others_are_filled():
    cat = locales.catalog("ja")
    plain = next(k for k, v in cat.items() if "{" not in v and "}" not in v)
    assert locales.t(plain, "ja") == cat[plain]
    with texts_on(ON):
        assert "{" not in locales.t("dialog.progress", "ja", n=1, left=3)


def test_a_remembered_text_is_the_one_filled_afresh():
    cases = [(1, 3), (True, 3), (1.0, 3), (2, 3)]  # equal as keys, not as texts
    with texts_on(ON):
        shown = [locales.t("dialog.progress", "en", n=n, left=left) for n, left in cases]
        locales._TEXTS.clear()
        for (n, left), text in zip(cases, shown, strict=True):
            assert text == locales.t("dialog.progress", "en", n=n, left=left)
            assert text == locales.catalog("en")["dialog.progress"].format(
                **(locales._figures() | {"n": n, "left": left})
            )
    assert len(set(shown)) == len(cases)


def test_the_lexicon_index_finds_what_the_longest_first_pattern_finds():
    """Each position's longest word, as `(?=(longest|...|shortest))` would find it."""
    import re

    from dialogs.questions import questions

    lexicons = [
        understanding._options(q.id, lang)
        for q in questions().values()
        if q.kind == "choice"
        for lang in ("ja", "en")
    ] + [understanding._proposition(q.id) for q in questions().values() if q.kind == "yes_no"]
    texts = [text for _, text in readings_cases()] + ["", "a", "itsuite 県外の工場"]
    for lexicon in lexicons:
        ordered = sorted(lexicon.words, key=len, reverse=True)
        pattern = re.compile("(?=(" + "|".join(map(re.escape, ordered)) + "))")
        for text in texts:
            for s in (text, understanding.norm(text)):
                found = [(m.start(), m.group(1)) for m in pattern.finditer(s)]
                assert lexicon.starts(s) == found, s


def most_left_afresh(answers: dict, skipped: tuple, on) -> int:
    """The longest way to a verdict as the verdicts themselves say it: each hub's worlds
    evaluated as answers of their own."""
    missing = [f for f in evaluate(answers, on=on).missing if f not in skipped]
    hub = next((h for h in rules_engine.HUBS if h in missing), None)
    if hub is None:
        return len(missing)
    worlds = [answers | {hub: v.value} for v in rules_engine.HUBS[hub]]
    return 1 + max(most_left_afresh(w, skipped, on) for w in worlds)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "entity_type": st.sampled_from(["company", "sole_proprietor", "sme_association"]),
            "industry": st.sampled_from(["retail", "manufacturing", "software_it"]),
            "blue_return": st.booleans(),
            "capital_yen": st.sampled_from([1, 300_000_000, 10**10]),
            "employees": st.sampled_from([5, 300, 900]),
            "tax_arrears": st.booleans(),
            "site_in_tochigi": st.booleans(),
            "project_type": st.sampled_from(["led", "other", "equipment_replacement"]),
            "equipment": st.sampled_from(["boiler", "other"]),
            "replaces_existing": st.booleans(),
            "delivery": st.sampled_from(["purchase", "lease"]),
            "co2_before_t": st.sampled_from(["64.1", "0", "10"]),
            "co2_after_t": st.sampled_from(["54.1", "9.5"]),
        },
    ),
    st.lists(st.sampled_from(["entity_type", "project_type", "industry", "employees"])),
    st.sampled_from([ON, dt.date(2023, 1, 1), dt.date(2030, 1, 1)]),
)
def test_the_longest_way_left_is_the_one_the_verdicts_say(answers, skipped, on):
    skipped = tuple(sorted(set(skipped)))
    assert rules_engine.most_left(answers, skipped, on) == most_left_afresh(answers, skipped, on)


def test_a_remembered_fit_is_the_one_validated_afresh():
    from decimal import Decimal

    values = [0, 1, True, False, -1, 10**12, "3", "led", "x", None, 1.0, Decimal("64.1")]
    values += [Decimal("1e-101"), Decimal("1." + "0" * 100), Decimal("1." + "0" * 99), "64.1"]
    for q in questions_module.questions().values():
        for value in values * 2:  # the second time remembered
            try:
                Answers.model_validate({q.id: value})
                fresh: object = True
            except ValidationError:
                fresh = False
            except TypeError:  # None for a figure: pydantic's own TypeError, then and now
                fresh = TypeError
            try:
                fits: object = q.fits_model(value)
            except TypeError:
                fits = TypeError
            assert fits is fresh, (q.id, value)
    assert len(questions_module._FITS) <= questions_module.FITS_KEPT
