"""The CO2 estimate inside the dialog: at the CO2 questions, "don't know" opens a few questions
about the equipment already known (its questions are data: co2_dialog.yaml), then the estimate
with its working and factor; accepted, both figures are recorded as estimates. A figure typed
in kWh, kL, L or m³ is converted at once. And once the figure before is known, the question
after says what figure would qualify.

The sub-dialog's state is `State.co2` (plain JSON); while it is set, engine.step hands every
input here first. Commands keep their meaning: back steps back inside it, skip/cancel/restart/
edit leave it, summary/help/why show it again afterwards."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated

from pydantic import TypeAdapter, ValidationError

from dialogs import engine, parsing
from dialogs.co2_text import factor_lines, factor_name, number, working_lines
from dialogs.io import Choice, Interpretation, Reply, State, UserInput
from locales import t
from rules import yaml_data
from rules.clock import today
from rules.ruleset import ruleset_for

if TYPE_CHECKING:
    from rules.co2 import Estimate

# rules.co2 (the estimator and its factor data, ~12 ms of models to build) is imported where an
# estimate is made: every question shows `target_note`, which does not need it.

FIELDS = ("co2_before_t", "co2_after_t")
ESTIMATOR_KIND = {"electricity_rated": "electricity"}  # other kinds are the estimator's own
KG = Decimal("0.001")
GRAM = Decimal("0.000001")
INEXACT_PLACES = 12  # products of typed figures and factors stay well within; quotients do not


@cache
def _data() -> dict:
    text = (resources.files("dialogs") / "co2_dialog.yaml").read_text("utf-8")
    data = yaml_data.load(text)
    data["readers"] = {
        name: parsing.measure_reader(units, data["fillers"])
        for name, units in data["units"].items()
    }
    return data


@cache
def _check(kind: str, qid: str) -> TypeAdapter:
    """The estimator's own limits for one field (hours <= 24, efficiency <= 1 ...)."""
    from rules.co2 import Electricity, Fuel, Lighting

    models = {"lighting": Lighting, "electricity": Electricity, "fuel": Fuel}
    info = models[ESTIMATOR_KIND.get(kind, kind)].model_fields[qid]
    return TypeAdapter(Annotated[info.annotation, info])


def kind_for(answers: dict) -> str | None:
    """lighting / electricity / fuel for the project already described, or None."""
    kinds = _data()["kinds"]
    if answers.get("project_type") == "led":
        return kinds["led"]
    if answers.get("project_type") == "equipment_replacement":
        return kinds.get(answers.get("equipment"))
    return None


# --- hooks called by engine.py -----------------------------------------------------------------
def start(turn: engine.Turn, qid: str) -> bool:
    """ "Don't know" at a CO2 question: open the sub-dialog when the equipment is known."""
    kind = kind_for(turn.s.answers) if qid in FIELDS else None
    if kind is None:
        return False
    turn.s.co2 = {"field": qid, "kind": kind, "values": {}, "at": None}
    _next(turn, t(f"co2.dialog.intro.{kind}", turn.lang))
    return True


def typed(turn: engine.Turn, qid: str, text: str) -> str | None:
    """A figure in kWh, kL, L or m³ at a CO2 question: converted to tonnes and echoed (kL and L
    first ask which fuel). The phase after it, or None when the text is no such figure."""
    if qid not in FIELDS:
        return None
    from rules.co2 import factor_set

    fuel, text = _fuel_named(text)
    reader = _data()["readers"]["typed_fuel_named" if fuel else "typed"]
    parsed = parsing.parse_measure(text, reader)
    if not parsed.ok or parsed.unit is None:
        return None
    source = fuel or _data()["typed_units"].get(parsed.unit)
    per = factor_set(_on(turn)).fuels[fuel].per if fuel else ""
    if fuel and parsing.normalize(per) != parsed.unit:  # "5 t of kerosene": ask, do not guess
        fuel_name = t(f"co2.choice.{fuel}", turn.lang)
        turn.ask(qid, t("co2.dialog.fuel_unit", turn.lang, fuel=fuel_name, unit=per))
        return turn.s.phase
    values = {"amount": str(parsed.value), "unit": parsed.unit}
    turn.s.co2 = {"field": qid, "kind": "typed_fuel", "values": values, "at": None}
    if source is None:
        _next(turn)
    else:
        _convert(turn, source)
    return turn.s.phase


def _fuel_named(text: str) -> tuple[str | None, str]:
    """The fuel a typed figure names (its longest synonym found), and the text without it."""
    t_ = parsing.normalize(text)
    found = [(len(w), fuel, w) for fuel, w in _fuel_words() if w in t_]
    if not found:
        return None, text
    _, fuel, word = max(found)
    return fuel, t_.replace(word, " ")


@cache
def _fuel_words() -> tuple[tuple[str, str], ...]:
    """(fuel, synonym normalised) for every fuel's synonyms, empty ones left out."""
    return tuple(
        (fuel, w)
        for fuel, words in _data()["questions"]["fuel"]["fuel"]["choices"].items()
        for w in map(parsing.normalize, words)
        if w
    )


def target_note(answers: dict, qid: str, on: dt.date | None, lang: str) -> str:
    """For the question after: the largest figure that still meets 第4 (whichever test is
    easier), its thresholds from the ruleset in force. Cut down for display, never up."""
    project = answers.get("project_type")
    before = answers.get("co2_before_t")
    if qid != "co2_after_t" or before is None or Decimal(before) == 0:
        return ""
    rs, _ = ruleset_for(on or today())
    p = rs.projects.get(project)
    if p is None or p.min_reduction_t is None:
        return ""
    target = p.target_after_t(Decimal(before)).quantize(KG, ROUND_DOWN)
    return t(
        "co2.dialog.target",
        lang,
        target=number(target),
        min_t=number(p.min_reduction_t),
        min_percent=number(p.min_reduction_ratio * 100),
    )


def nothing_before(reading: dict) -> bool:
    """A figure before of 0 leaves nothing to cut: read back like other disqualifying answers."""
    return reading["field"] == "co2_before_t" and Decimal(str(reading["value"])) == 0


def step(state: State, inp: UserInput, on: dt.date | None) -> tuple[State, list[Reply]]:
    """One input while the sub-dialog is open."""
    kind, payload = engine.read(state, inp)
    name = payload[1:].partition(" ")[0] if kind == "command" else None
    if name in ("cancel", "restart", "edit", "skip"):  # leave the estimate; the command as ever
        return engine.step(state.model_copy(update={"co2": None}), inp, on, sub=False)
    if name in ("summary", "start"):  # shown by the engine; /continue comes back here
        return engine.step(state, inp, on, sub=False)
    turn = engine.Turn(engine.working_copy(state), on)
    turn.s.last = Interpretation(question=turn.s.awaiting, outcome="command", command=name)
    if name == "back":
        _back(turn)
    elif name == "help":
        turn.say("dialog.help")
        _ask(turn)
    elif name == "why":
        _ask(turn, t("co2.dialog.why", turn.lang))
    elif name is not None:  # continue, keep, anything else: show again what is asked
        _ask(turn)
    else:
        turn.s.last.outcome = "help"
        _answer(turn, kind, payload)
    turn.s.offered = next((r.choices for r in reversed(turn.replies) if r.choices), [])
    return turn.s, turn.replies


# --- the sub-dialog ----------------------------------------------------------------------------
def _questions(c: dict) -> dict:
    return _data()["questions"][c["kind"]]


def _open(c: dict) -> list[str]:
    """The questions still to ask, in order (those whose condition holds)."""
    out = []
    for qid, q in _questions(c).items():
        when, unless = q.get("when", {}), q.get("unless", {})
        if any(c["values"].get(k) != v for k, v in when.items()):
            continue
        if any(c["values"].get(k) == v for k, v in unless.items()):
            continue
        if qid not in c["values"]:
            out.append(qid)
    return out


def _next(turn: engine.Turn, prefix: str = "") -> None:
    c = turn.s.co2
    todo = _open(c)
    if todo:
        c["at"] = todo[0]
        _ask(turn, prefix)
    elif c["kind"] == "typed_fuel":
        _convert(turn, c["values"]["fuel"])
    else:
        _offer(turn, prefix)


def _ask(turn: engine.Turn, prefix: str = "") -> None:
    c = turn.s.co2
    if c["at"] == "accept":
        _offer(turn, prefix)
        return
    q = _questions(c)[c["at"]]
    choices = [
        Choice(value=f"co2:{v}", label=t(f"co2.choice.{v}", turn.lang))
        for v in q.get("choices", {})
    ]
    quit_button = Choice(value="co2:quit", label=t("co2.dialog.quit", turn.lang))
    text = t(f"co2.ask.{q.get('text', c['at'])}", turn.lang, **_params(turn, c))
    turn.replies.append(
        Reply(
            key=f"co2.ask.{c['at']}",
            text="\n\n".join(p for p in (prefix, text) if p),
            choices=[*choices, quit_button],
        )
    )


def _params(turn: engine.Turn, c: dict) -> dict:
    """The fuel named in amount questions, with its unit."""
    v = c["values"]
    from rules.co2 import ELECTRICITY, factor_set

    fuel = v.get("fuel_after") if c["at"] == "amount_after" else v.get("fuel")
    if fuel is None:
        return {"fuel": "", "unit": ""}
    per = "kWh" if fuel == ELECTRICITY else factor_set(_on(turn)).fuels[fuel].per
    return {"fuel": t(f"co2.choice.{fuel}", turn.lang), "unit": per}


def _on(turn: engine.Turn) -> dt.date:
    return turn.on or today()


def _answer(turn: engine.Turn, kind: str, payload: str) -> None:
    c = turn.s.co2
    pressed = kind in ("button", "label")  # a label typed exactly counts as pressed
    value = payload.partition(":")[2] if pressed and payload.startswith("co2:") else None
    if value == "quit":
        _leave(turn, "co2.dialog.quit_done")
        return
    if c["at"] == "accept":
        if value not in ("yes", "no"):
            words = [(k, [t(f"co2.dialog.use_{k}", turn.lang), *w]) for k, w in _accept_words()]
            said = parsing.parse_choice(payload, words)
            value = said.value if said.ok else None
        if value is None:
            said = parsing.parse_yes_no(payload)
            value = {True: "yes", False: "no"}.get(said.value) if said.ok else None
        yes = None if value is None else value == "yes"
        if yes is True:
            _accept(turn)
        elif yes is False:
            _leave(turn, "co2.dialog.refused")
        else:
            _ask(turn, t("co2.dialog.reask", turn.lang))
        return
    q = _questions(c)[c["at"]]
    result, problem = _read(turn, q, value if pressed else None, payload)
    if problem == "co2.dialog.needed" and "unknown" in q:  # another way to the same figure
        c["kind"], c["values"] = q["unknown"], {}
        _next(turn, t(f"co2.dialog.intro.{c['kind']}", turn.lang))
        return
    if problem:
        _ask(turn, t(problem, turn.lang))
        return
    c["values"][c["at"]] = result
    _next(turn)


def _read(turn: engine.Turn, q: dict, button: str | None, text: str) -> tuple:
    """(the value of the answer to `q`, None), or (None, the locale key of why it cannot be
    used)."""
    c = turn.s.co2
    if "choices" in q:
        options = [(v, [t(f"co2.choice.{v}", turn.lang), *syn]) for v, syn in q["choices"].items()]
        parsed = parsing.Parsed(button in q["choices"], button) if button else None
        parsed = parsed or parsing.parse_choice(text, options)
        if parsed.ok:
            return parsed.value, None
        return (
            None,
            "review.co2_choice_unknown" if parsed.error == "unknown" else "review.co2_choice_reask",
        )
    parsed = parsing.parse_measure(text, _data()["readers"][q["read"]])
    if not parsed.ok:
        return None, "co2.dialog.needed" if parsed.error == "unknown" else "co2.dialog.reask"
    value = parsed.value
    if q["read"] == "percent" and (parsed.unit == "%" or value > 1):
        value = value / 100  # 80% or 80 -> 0.8
    per = _params(turn, c)["unit"]
    if q["read"] == "amount" and parsed.unit not in (None, parsing.normalize(per)):
        return None, "co2.dialog.wrong_unit"
    try:
        checked = _check(c["kind"], c["at"]).validate_python(value)
    except ValidationError:
        return None, "co2.dialog.out_of_range"
    return (str(checked) if isinstance(checked, Decimal) else checked), None


def _estimate(turn: engine.Turn) -> Estimate | None:
    """The estimate from the answers given ("the same fuel" is no fuel switch)."""
    from rules.co2 import estimate

    c = turn.s.co2
    values = {k: v for k, v in c["values"].items() if v != "same"}
    try:
        return estimate({"kind": ESTIMATOR_KIND.get(c["kind"], c["kind"]), **values}, _on(turn))
    except ValidationError:  # each figure was checked; kept as a guard, never a crash
        return None


def _offer(turn: engine.Turn, prefix: str = "") -> None:
    """The estimate with its working and factors, and the question whether to use it."""
    c = turn.s.co2
    c["at"] = "accept"
    est = _estimate(turn)
    if est is None:
        _leave(turn, "co2.dialog.reask")
        return
    lines = [
        t("co2.dialog.result", turn.lang, before=number(est.before_t), after=number(est.after_t)),
        *working_lines(est, turn.lang),
        *factor_lines(est, turn.lang),
        t("co2.dialog.guide_only", turn.lang),
        t("co2.dialog.use", turn.lang),
    ]
    turn.replies.append(
        Reply(
            key="co2.dialog.result",
            text="\n\n".join(p for p in (prefix, "\n".join(lines)) if p),
            choices=[
                Choice(value="co2:yes", label=t("co2.dialog.use_yes", turn.lang)),
                Choice(value="co2:no", label=t("co2.dialog.use_no", turn.lang)),
            ],
        )
    )


def _accept(turn: engine.Turn) -> None:
    est = _estimate(turn)
    turn.s.co2 = None
    before, after = _recordable(est.before_t, ROUND_DOWN), _recordable(est.after_t, ROUND_UP)
    engine.record(turn, "co2_before_t", before, approx=True)
    engine.record(turn, "co2_after_t", after, approx=True)
    turn.s.co2_estimate = {  # the checklist shows the working while these figures stand
        "before": str(before),
        "after": str(after),
        "lines": [*working_lines(est, turn.lang), *factor_lines(est, turn.lang)],
    }
    echo = t(
        "co2.dialog.accepted",
        turn.lang,
        before=number(est.before_t),
        after=number(est.after_t),
        factor=", ".join(factor_name(f, turn.lang) for f in est.factors),
    )
    turn.s.phase = turn.proceed(echo)


def _convert(turn: engine.Turn, source: str) -> None:
    """A typed amount times its factor, recorded as an estimate of the question's figure."""
    from rules.co2 import ELECTRICITY, factor_set

    c = turn.s.co2
    turn.s.co2 = None
    fs = factor_set(_on(turn))
    f = fs.electricity.factors[fs.electricity.default] if source == ELECTRICITY else None
    f = f or fs.fuels[source]
    amount = Decimal(c["values"]["amount"])
    tonnes = amount * f.value
    engine.record(turn, c["field"], _plain(tonnes), approx=True)
    name = t(
        "co2.name.electricity." + fs.electricity.default
        if source == ELECTRICITY
        else f"co2.name.fuel.{source}",
        turn.lang,
    )
    echo = t(
        "co2.dialog.converted",
        turn.lang,
        amount=number(amount),
        unit=f.per,
        tonnes=number(tonnes),
        factor=f"{name} {number(f.value, exact=True)} {f.unit}",
    )
    turn.s.phase = turn.proceed(echo)


def _accept_words() -> list[tuple[str, list[str]]]:
    return list(_data()["accept"].items())


def _recordable(d: Decimal, rounding: str) -> Decimal:
    """An exact product as it is; a quotient (a COP or efficiency ratio, 28 digits) to the gram,
    before rounded down and after up so that the cut the verdict quotes is never overstated."""
    if -d.normalize().as_tuple().exponent > INEXACT_PLACES:
        d = d.quantize(GRAM, rounding)
    return _plain(d)


def _plain(d: Decimal) -> Decimal:
    """The same value without trailing zeros or exponent (20.800000 -> 20.8, 1E+2 -> 100)."""
    return Decimal(format(d.normalize(), "f"))


def _leave(turn: engine.Turn, key: str) -> None:
    """Back to the CO2 question without an estimate (it can still be typed or skipped)."""
    field = turn.s.co2["field"]
    turn.s.co2 = None
    turn.ask(field, t(key, turn.lang))
    turn.replies[-1].choices.append(turn.button("dialog.buttons.skip", "/skip"))


def _back(turn: engine.Turn) -> None:
    c = turn.s.co2
    answered = [q for q in _questions(c) if q in c["values"]]
    if not answered or c["kind"] == "typed_fuel":
        _leave(turn, "co2.dialog.back_out")
        return
    c["values"].pop(answered[-1])
    _next(turn)
