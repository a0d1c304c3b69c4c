"""`step(state, input) -> (state, replies)`: the whole conversation as one pure function.

Commands are recognised first, in one place; the machine (machine.py) says where a trigger
leads; the rules say what to ask next (`missing[0]`) and when to stop. No channel, clock or
database in here: adapters pass the evaluation date and store what comes back."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from dialogs import co2_dialog, parsing
from dialogs.io import Choice, Interpretation, Reply, State, UserInput, copied
from dialogs.machine import route
from dialogs.parsing import normalize
from dialogs.questions import command_words, questions, readback_words
from dialogs.render import verdict_json
from locales import LANGS, has, t
from rules import Verdict, relevant_fields
from rules.clock import texts_date, texts_on, today
from rules.engine import most_left, remembered_verdict

if TYPE_CHECKING:
    from dialogs.understanding import Reading

NUMERIC = ("money", "count", "tonnes")
CHECKLIST_KEY = "takeaway.checklist.ready"  # adapters send the checklist after this reply
NEAR_LIMIT = Decimal("0.1")  # an estimate within 10% of a size limit gets a "please check" note
# The applicant reason's limits each answer is compared with (第2 2 (6) has two: the law's
# group and the 別表 row).
LIMIT_PARAMS = {
    "capital_yen": ("capital_max_yen",),
    "employees": ("employees_max", "law_employees_max"),
}
_END_PUNCT = "!！?？。.、,"
BOUND_NAMES = {"<": "below", "<=": "at_most", ">": "above", ">=": "at_least"}


class Turn:
    """One step's working data: the state being changed, the replies, and helpers for both."""

    def __init__(self, state: State, on: dt.date | None):
        self.s, self.on, self.replies = state, on, []
        self.lang = state.lang

    def say(
        self, key: str, choices: list[Choice] | None = None, verdict: dict | None = None, **params
    ) -> None:
        self.replies.append(
            Reply(key=key, text=t(key, self.lang, **params), choices=choices or [], verdict=verdict)
        )

    def button(self, key: str, value: str) -> Choice:
        return Choice(value=value, label=t(key, self.lang))

    def verdict(self) -> Verdict:
        """The verdict on the answers now: the remembered one, read only (what the state keeps
        of it, verdict_json copies)."""
        return remembered_verdict(self.s.answers, on=self.on)

    def ask(self, qid: str, prefix: str = "") -> None:
        """Ask a question; a prefix (echo, re-ask reason) shares its message."""
        q = questions()[qid]
        self.s.awaiting = qid
        by = self.s.answers.get(q.text_by, "led") if q.text_by else None
        if self.lang in LANGS and type(by) in (str, type(None)):  # the same for every chat
            question, options = _rendered(qid, self.lang, by, texts_date())
        else:
            question, options = q.text(self.s.answers, self.lang), _options(q, self.lang)
        if q.kind in NUMERIC:
            choices = [self.button("dialog.buttons.unknown", f"{qid}:?")]
            if qid in self.s.answers and qid in self.s.approx and qid in LIMIT_PARAMS:
                # an estimate asked once more (next to a limit): it may stay, even after a re-ask
                choices.append(self.button("dialog.buttons.keep", "/keep"))
        else:
            choices = [Choice(value=value, label=label) for value, label in options]
        n, left = self.progress(qid)
        if qid not in self.s.asked:
            self.s.asked.append(qid)
        progress = t("dialog.progress", self.lang, n=n, left=left)
        note = co2_dialog.target_note(self.s.answers, qid, self.on, self.lang)
        text = "\n\n".join(p for p in (prefix, question + note + progress) if p)
        self.replies.append(Reply(key=f"question.{qid}.text", text=text, choices=choices))

    def progress(self, qid: str) -> tuple[int, int]:
        """(n, m) for 'question n, at most m left': n counts the questions the user was asked
        and still has answered or skipped (not those filled from another answer), m the longest
        way to a verdict from here, this question included."""
        s = self.s
        done = [f for f in s.asked if f != qid and (f in s.answers or f in s.skipped)]
        before = s.asked[: s.asked.index(qid)] if qid in s.asked else s.asked
        n = len([f for f in done if f in before]) + 1
        skipped = tuple(sorted(f for f in s.skipped if f != qid))
        try:  # each value with its type, so that true is not 1
            items = tuple([(f, type(v), v) for f, v in s.answers.items() if f != qid])
            left = _left_by_items(items, skipped, self.on)
        except TypeError:  # a value that cannot be a key (not in a dialog's answers)
            answers = {f: v for f, v in s.answers.items() if f != qid}
            left = _most_left(json.dumps(answers, sort_keys=True), skipped, self.on)
        return n, max(left, 1)

    def show(self, qid: str, value: Any) -> str:
        return questions()[qid].show(value, self.lang)

    # --- what the user sees at the end -------------------------------------------------------
    def next_question(self, verdict: Verdict) -> str | None:
        """The rules' first missing field, passing over those the user chose to skip."""
        return next((f for f in verdict.missing if f not in self.s.skipped), None)

    def shown_answer(self, qid: str) -> str:
        """An answer as the summary shows it: bounds and estimates marked, skipped ones said so."""
        if qid not in self.s.answers:
            return t("dialog.skipped_value", self.lang)
        if qid in self.s.bounds:
            return self.show_bound(qid, self.s.bounds[qid])
        value = self.show(qid, self.s.answers[qid])
        return t("dialog.approx_value", self.lang, value=value) if qid in self.s.approx else value

    def show_bound(self, qid: str, bound: list | tuple) -> str:
        op, number = bound
        return t(
            f"dialog_understanding.bound.{BOUND_NAMES[op]}", self.lang, value=self.show(qid, number)
        )

    def summary_fields(self) -> list[str]:
        """Answered and skipped questions, in the order they were asked."""
        skipped = [f for f in self.s.skipped if f not in self.s.history]
        return self.s.history + sorted(skipped, key=list(questions()).index)

    def summary_text(self, reference: bool = True) -> str:
        lines = [
            t(
                "dialog.summary_line",
                self.lang,
                short=t(f"question.{f}.short", self.lang),
                value=self.shown_answer(f),
            )
            for f in self.summary_fields()
        ]
        title = (
            t("dialog.summary_title", self.lang) if lines else t("dialog.summary_empty", self.lang)
        )
        return "\n".join([title, *lines, *(self.reference_lines() if reference else [])])

    def reference_lines(self) -> list[str]:
        """The reference number an owner quotes to the prefecture (none without storage)."""
        if not self.s.reference:
            return []
        return ["", t("takeaway.reference_line", self.lang, reference=self.s.reference)]

    def conclude(self, verdict: Verdict, prefix: str = "") -> None:
        """The summary, then the verdict with its reasons, warnings and next steps."""
        self.s.awaiting = None
        vj = verdict_json(verdict, self.lang)
        self.s.verdict = vj
        # the verdict that follows ends with the reference number: once per turn is enough
        summary = "\n\n".join(p for p in (prefix, self.summary_text(reference=False)) if p)
        self.replies.append(Reply(key="dialog.summary_title", text=summary))
        shown = {
            "eligible": {"met"},
            "ineligible": {"not_met"},
            "undetermined": {"unknown", "not_met"},
        }[verdict.status]
        lines = [t(verdict_keys(vj)[0], self.lang), t("verdict.reasons_title", self.lang)]
        lines += [
            t("verdict.reason_line", self.lang, message=r["message"], clause=r["clause"])
            for r in vj["reasons"]
            if r["status"] in shown
        ]
        notes = list(vj["warnings"])
        estimates = [f for f in self.s.approx if f not in self.s.bounds]
        if estimates:  # a verdict resting on estimates deserves a reminder
            notes.append(
                t(
                    "verdict.estimates",
                    self.lang,
                    answers=t("dialog.list_joiner", self.lang).join(
                        t(f"question.{f}.short", self.lang) for f in estimates
                    ),
                )
            )
        notes += [  # a bound was checked with its nearest value: say so, the verdict shows it
            t(
                "dialog_understanding.bound_used",
                self.lang,
                short=t(f"question.{f}.short", self.lang),
                bound=self.show_bound(f, b),
                value=self.show(f, self.s.answers[f]),
            )
            for f, b in self.s.bounds.items()
        ]
        if notes:
            lines += [
                "",
                t("verdict.warnings_title", self.lang),
                *[t("verdict.warning_line", self.lang, message=w) for w in notes],
            ]
        lines += ["", t("verdict.next_title", self.lang), *next_steps(vj, self.lang)]
        lines += self.reference_lines()
        self.replies.append(
            Reply(
                key=f"verdict.title.{verdict.status}",
                text="\n".join(lines),
                verdict=vj,
                choices=self.after_verdict_buttons(),
            )
        )

    def after_verdict_buttons(self) -> list[Choice]:
        return [
            self.button("takeaway.buttons.checklist", "/checklist"),
            self.button("takeaway.buttons.contact", "/contact"),
            self.button("dialog.buttons.summary", "/summary"),
            self.button("dialog.buttons.restart", "/restart"),
        ]

    def proceed(self, prefix: str = "", trigger: str = "answer") -> str:
        """After answers change: the verdict if certain (or nothing askable is left), else the
        next question."""
        verdict = self.verdict()
        nxt = self.next_question(verdict)
        phase = route(self.s.phase, trigger, decided=nxt is None)
        if phase == "verdict":
            self.conclude(verdict, prefix)
        else:
            self.ask(nxt, prefix)
        return phase


@lru_cache(maxsize=1024)
def _rendered(qid: str, lang: str, by: str | None, on: dt.date) -> tuple[str, tuple]:
    """A question's text (its wording picked by the answer `by`) and its buttons' (value,
    label), as the texts quote the ruleset on a date: the same for every chat asked it."""
    q = questions()[qid]
    return q.text({q.text_by: by} if q.text_by else {}, lang), _options(q, lang)


def _options(q, lang: str) -> tuple[tuple[str, str], ...]:
    """A choice or yes/no question's buttons as (value, label); none for a figure."""
    if q.kind in NUMERIC:
        return ()
    return tuple((f"{q.id}:{v}", label) for v, label in q.options(lang))


def verdict_keys(verdict: dict) -> tuple[str, str]:
    """The locale keys of a verdict's title and next steps (from its JSON): an undetermined
    one that no answer can settle is the prefecture's to decide."""
    status = verdict["status"]
    if status == "undetermined" and not verdict["missing"]:
        return "verdict.by_prefecture.title", "verdict.by_prefecture.next"
    return f"verdict.title.{status}", f"verdict.next.{status}"


def next_steps(verdict: dict, lang: str, documents: bool = True) -> list[str]:
    """What to do now (from the verdict JSON): the text for its status, the documents past
    calls asked for when eligible (unless the caller lists them itself, as the checklist
    does), and for an ineligible one the advice for each criterion that ruled it out."""
    lines = [t(verdict_keys(verdict)[1], lang)]
    if verdict["status"] == "eligible" and documents:
        lines.append(t("takeaway.documents_line", lang))
    if verdict["status"] == "ineligible":
        keys = [f"verdict.next.by_criterion.{r['criterion']}" for r in verdict["reasons"]]
        lines += [
            t(key, lang)
            for key, r in zip(keys, verdict["reasons"], strict=True)
            if r["status"] == "not_met" and has(key, lang)
        ]
    return lines


# --- reading the input -------------------------------------------------------------------------
@cache
def _command_index() -> dict[str, str]:
    return {normalize(w): name for name, words in command_words().items() for w in words}


# Labels are the locale's texts (and answers shown back): few, and read at every typed input.
_label_key = lru_cache(maxsize=4096)(normalize)


def _normalized(text: str) -> str:
    """normalize(text); a short text (most answers, often the same) remembered."""
    return _label_key(text) if len(text) <= 64 else normalize(text)


def numbers_select(state: State) -> bool:
    """Whether a typed number picks a shown choice. While a number is asked it is the answer,
    except when the choices shown are the summary's edit list: "2" there is never "2 people"."""
    if state.awaiting is None or questions()[state.awaiting].kind not in NUMERIC:
        return True
    return any(c.value.startswith("/edit ") for c in state.offered)


def read(state: State, inp: UserInput) -> tuple[str, str | None]:
    """(kind, payload): ("command", "/edit capital_yen"), ("button", "industry:retail"),
    ("label", "industry:retail") or ("text", raw). Typing a shown label exactly, or its number,
    selects it like a press ("label"), but it was typed: a disqualifying one is read back."""
    if inp.choice is not None:
        return ("command", inp.choice) if inp.choice.startswith("/") else ("button", inp.choice)
    text = (inp.text or "").strip()
    key = _normalized(text).strip("!！。.")
    word = _command_index().get(key) or _command_index().get(key.split(" ")[0])
    if word and (word != "edit" or " " in key):
        arg = key.split(" ", 1)[1] if word == "edit" else ""
        return "command", f"/{word} {arg}".strip()
    labels = {_label_key(c.label): c.value for c in state.offered}
    button_no = key.isascii() and key.isdigit() and len(key) <= 3  # "1" to "999", nothing odd
    chosen = labels.get(key)
    if (
        chosen is None
        and numbers_select(state)
        and button_no
        and 1 <= int(key) <= len(state.offered)
    ):
        chosen = state.offered[int(key) - 1].value
    if chosen is not None:  # typed, so a disqualifying answer is still read back
        kind, payload = read(state, UserInput(choice=chosen))
        return ("label" if kind == "button" else kind), payload
    return "text", text


# --- handlers, one per trigger -------------------------------------------------------------
def _answer(turn: Turn, kind: str, payload: str) -> str:
    """An answer to the awaited question (also typed while a reading is read back: it replaces
    that reading). Buttons are recorded directly; typed text goes through `understand`."""
    s = turn.s
    qid = s.awaiting
    q = questions()[qid]
    reading_back = (s.confirming, s.pending) if s.confirming else None
    s.confirming, s.pending = None, []
    s.last = Interpretation(question=qid, outcome="reask")
    if kind in ("button", "label"):
        field, _, value = payload.partition(":")
        if field != qid and reading_back:  # an old question's button: the read-back stands
            s.confirming, s.pending = reading_back
            s.last.outcome = "ignored"
            _show_read_back(turn, t("dialog.reask.stale_button", turn.lang))
            return "confirming"
        if field != qid:
            s.last.outcome = "ignored"
            turn.ask(qid, t("dialog.reask.stale_button", turn.lang))
            return "asking"
        if value == "?":
            _guide(turn, qid)
            return "asking"
        button = q.from_button(value)
        if button is None:
            turn.ask(qid, t(f"dialog.reask.{q.kind}", turn.lang, max=q.max))
            return "asking"
        return _settle(turn, [_reading(qid, button)], typed=kind == "label")
    if kind == "text" and (phase := co2_dialog.typed(turn, qid, payload)):
        return phase  # a figure in kWh, kL, L or m³: converted to tonnes
    r = understand(qid, payload, s.answers, turn.lang)
    if r.outcome == "value" and q.fits_model(r.value):
        also = sorted(
            (
                _reading(f, v, also=True)
                for f, v in r.also
                if f != qid and f in questions() and questions()[f].fits_model(v)
            ),
            key=lambda x: list(questions()).index(x["field"]),
        )
        main = _reading(qid, r.value, approx=r.approx, sure=r.sure, note=r.note)
        return _settle(turn, [main, *also], typed=True)
    if r.outcome == "bound" and r.bound:
        return _bound(turn, qid, r)
    if r.outcome == "ambiguous" and r.candidates:
        return _which(turn, qid, r)
    if r.outcome == "ask_back":  # a question about the question: its help, nothing recorded
        s.last.outcome = "help"
        turn.ask(
            qid,
            "\n".join(t(f"question.{qid}.{k}", turn.lang) for k in ("why", "unknown")),
        )
    elif r.outcome == "hedge":
        turn.ask(qid, t("dialog_understanding.hedge", turn.lang))
    elif r.outcome == "unknown":
        _guide(turn, qid)
    else:
        error = r.outcome if r.outcome in ("negative", "too_large") else q.kind
        turn.ask(qid, t(f"dialog.reask.{error}", turn.lang, max=q.max))
    return "asking"


def _reading(field: str, value: Any, also: bool = False, **extra: Any) -> dict:
    """One understood answer as plain JSON data (it may wait in the state for a read-back)."""
    note = extra.get("note")
    return {
        "field": field,
        "value": _json_value(value),
        "approx": bool(extra.get("approx")),
        "sure": extra.get("sure", True),
        "note": None if note is None else [note[0], _json_value(dict(note[1] or {}))],
        "bound": None if extra.get("bound") is None else _json_value(list(extra["bound"])),
        "also": also,
    }


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _settle(
    turn: Turn,
    readings: list[dict],
    typed: bool,
    trigger: str = "answer",
    echoes: tuple[str, ...] = (),
) -> str:
    """Record readings in order; a typed one that would make the business ineligible, or that
    the reader is unsure of, stops the line and is read back first (the rest wait behind it).
    Answers filled from the same message are recorded only while still open."""
    s, echoes = turn.s, list(echoes)
    queue = list(readings)
    main = next((r for r in queue if not r["also"]), None)
    while queue:
        r = queue.pop(0)
        if r["also"] and not _still_open(turn, r["field"]):
            continue
        if typed and (not r["sure"] or _newly_failing(turn, r)):
            s.confirming, s.pending = r, queue
            s.awaiting = r["field"]
            s.last.outcome, s.last.value = "confirm", r["value"]
            _show_read_back(turn, "\n".join(echoes))
            return route(s.phase, trigger, reading_back=True)
        _record(turn, r)
        echoes.append(_echo(turn, r))
    s.confirming, s.pending = None, []
    prefix = "\n".join(echoes)
    qid = main and main["field"]
    if main and main["approx"] and not main["bound"] and qid in LIMIT_PARAMS and qid in s.answers:
        if note := _near_limit_note(turn, qid, s.answers[qid]):
            # An estimate next to a limit could tip the verdict: ask once for the exact figure.
            turn.ask(qid, prefix + note)
            return route(s.phase, trigger)
    return turn.proceed(prefix, trigger)


def _still_open(turn: Turn, field: str) -> bool:
    """Another question a message answered is filled only while it is unanswered and asked."""
    return field not in turn.s.answers and field in turn.verdict().missing


def _newly_failing(turn: Turn, r: dict) -> list:
    """The criteria a (non-numeric) reading would turn to not met: those it disqualifies on.
    Figures are echoed exactly and the verdict shows them against the limit instead."""
    if questions()[r["field"]].kind in NUMERIC and not co2_dialog.nothing_before(r):
        return []
    before = {x.criterion for x in turn.verdict().reasons if x.status == "not_met"}
    try:
        after = remembered_verdict(turn.s.answers | {r["field"]: r["value"]}, on=turn.on)
    except ValidationError:
        return []
    return [x for x in after.reasons if x.status == "not_met" and x.criterion not in before]


def record(turn: Turn, qid: str, value: Any, approx: bool) -> None:
    """Store an answer worked out elsewhere (the CO2 estimate): as given, no read-back."""
    _record(turn, _reading(qid, value, approx=approx))


def _record(turn: Turn, r: dict) -> None:
    s = turn.s
    qid, value = r["field"], r["value"]
    q = questions()[qid]
    s.answers[qid] = value
    s.history = [f for f in s.history if f != qid] + [qid]
    s.skipped = [f for f in s.skipped if f not in (qid, *q.skip_also)]  # asked again
    s.approx = [f for f in s.approx if f != qid] + ([qid] if r["approx"] else [])
    s.bounds = {f: b for f, b in s.bounds.items() if f != qid}
    if r["bound"]:
        s.bounds[qid] = r["bound"]
    kept = relevant_fields(s.answers, on=turn.on)  # the answered fields still used
    if len(kept) < len(s.answers):  # some no longer apply: dropped everywhere
        kept = set(kept)
        s.answers = {f: v for f, v in s.answers.items() if f in kept}
        s.history = [f for f in s.history if f in kept]
        s.approx = [f for f in s.approx if f in kept]
        s.bounds = {f: b for f, b in s.bounds.items() if f in kept}
    still_open = set(turn.verdict().missing)  # a skipped question may no longer apply
    s.skipped = [f for f in s.skipped if f in still_open]
    if not r["also"]:
        s.last = Interpretation(question=s.last.question, outcome="answer", value=value)


def _shown_reading(turn: Turn, r: dict) -> str:
    if r["bound"]:
        return turn.show_bound(r["field"], r["bound"])
    return turn.show(r["field"], r["value"])


def _note(turn: Turn, r: dict) -> str:
    """The reader's explanation of a reading (which 別表 row and why), when it has one."""
    if not r["note"] or not has(r["note"][0], turn.lang):
        return ""
    return t(r["note"][0], turn.lang, **r["note"][1])


def _echo(turn: Turn, r: dict) -> str:
    echo = t(
        "dialog.echo_approx" if r["approx"] and not r["bound"] else "dialog.echo",
        turn.lang,
        short=t(f"question.{r['field']}.short", turn.lang),
        value=_shown_reading(turn, r),
    )
    return "\n".join(p for p in (echo, _note(turn, r)) if p)


def _show_read_back(turn: Turn, prefix: str = "") -> None:
    """What was understood, what it would mean for the verdict, and confirm / deny buttons."""
    r = turn.s.confirming
    lines = [
        prefix,
        t(
            "dialog_understanding.understood",
            turn.lang,
            short=t(f"question.{r['field']}.short", turn.lang),
            value=_shown_reading(turn, r),
        ),
        _note(turn, r),
    ]
    lines += [
        t(
            "dialog_understanding.ineligible",
            turn.lang,
            message=t(x.message_key, turn.lang, **x.params),
            clause=x.clause,
        )
        for x in _newly_failing(turn, r)
    ]
    lines.append(t("dialog_understanding.ask", turn.lang))
    turn.replies.append(
        Reply(
            key="dialog_understanding.understood",
            text="\n".join(p for p in lines if p),
            choices=[
                turn.button("dialog_understanding.buttons.confirm", "/confirm"),
                turn.button("dialog_understanding.buttons.deny", "/deny"),
            ],
        )
    )


def _confirm(turn: Turn) -> str:
    """Confirmed ("that is right"): record the reading read back, then whatever waited behind it."""
    s = turn.s
    r, pending = s.confirming, s.pending
    s.confirming, s.pending = None, []
    _record(turn, r)
    if r["also"]:
        s.last = Interpretation(question=s.last.question, outcome="answer", value=r["value"])
    return _settle(turn, pending, typed=True, trigger="confirm", echoes=(_echo(turn, r),))


def _deny(turn: Turn) -> str:
    """Denied ("not right"): nothing is recorded; the question is asked again."""
    s = turn.s
    qid = s.confirming["field"]
    s.confirming, s.pending = None, []
    s.last.outcome = "reask"
    turn.ask(qid, t("dialog_understanding.denied", turn.lang))
    return route(s.phase, "deny")


def _readback_reply(turn: Turn, text: str) -> str:
    """What a typed reply to a read-back is: "confirm", "deny", "answer" (a new answer to the
    question) or "unclear". A whole-message yes/no word decides first (a bare "yes" confirms
    even where the question is yes/no); a reply beginning with a no denies; then the text is
    read as an answer: the same reading confirms, another replaces it ("it is in the
    prefecture" is no yes to "outside Tochigi"), unless the reply also begins with a yes
    (contradictory: unclear); else a reply that begins with a yes confirms."""
    key = _normalized(text).strip(_END_PUNCT)
    words = readback_words()
    for name, role in (("confirm", "affirm"), ("deny", "deny")):
        if key in {_label_key(w) for w in words[role]}:
            return name
    starts = {
        name
        for name, role in (("confirm", "affirm_start"), ("deny", "deny_start"))
        if any(key.startswith(_label_key(w)) for w in words[role])
    }
    start = starts.pop() if len(starts) == 1 else None
    if start == "deny":  # "no, ...": whatever follows, nothing is recorded (asked again)
        return "deny"
    r = turn.s.confirming
    reading = understand(r["field"], text, turn.s.answers, turn.lang)
    if reading.outcome == "value":
        if _json_value(reading.value) == r["value"] and reading.sure:
            return "confirm"
        return "unclear" if start == "confirm" else "answer"
    return start or "answer"


def _bound(turn: Turn, qid: str, r: Reading) -> str:
    """A bound ("over 500 people") is used only when every value it allows decides the same;
    then the value nearest the bound is recorded as an estimate and shown as the bound."""
    q = questions()[qid]
    op, number = r.bound
    extremes = _bound_extremes(q, op, number) if q.kind in NUMERIC else None
    if extremes and all(q.fits_model(v) for v in extremes):
        seen = {_decides(turn, qid, v) for v in extremes}
        if len(seen) == 1:
            reading = _reading(qid, extremes[0], approx=True, bound=(op, number), note=r.note)
            return _settle(turn, [reading], typed=True)
    shown = turn.show_bound(qid, (op, _json_value(number)))
    turn.ask(qid, t("dialog_understanding.bound_figure", turn.lang, bound=shown))
    return "asking"


def _bound_extremes(q, op: str, number: Any) -> tuple | None:
    """(nearest, farthest) values the bound allows, or None when it allows none."""
    try:
        n = Decimal(str(number))
    except InvalidOperation:
        return None
    step = Decimal("0.001") if q.kind == "tonnes" else Decimal(1)
    top = Decimal(q.max if q.max is not None else parsing.MAX_VALUE)
    nearest, farthest = {
        ">": (n + step, top),
        ">=": (n, top),
        "<": (n - step, Decimal(0)),
        "<=": (n, Decimal(0)),
    }.get(op, (None, None))
    if nearest is None or not (0 <= nearest <= top):
        return None
    if q.kind != "tonnes":
        if nearest != nearest.to_integral_value():
            return None
        return int(nearest), int(farthest)
    return str(nearest), str(farthest)


def _decides(turn: Turn, qid: str, value: Any) -> tuple:
    """What a value would decide: the verdict, each criterion and what is still to ask."""
    v = remembered_verdict(turn.s.answers | {qid: value}, on=turn.on)
    return v.status, tuple(x.status for x in v.reasons), tuple(v.missing)


def _which(turn: Turn, qid: str, r: Reading) -> str:
    """Several readings remain: ask which, with a button for each (and why, if known)."""
    q = questions()[qid]
    note = _note(turn, _reading(qid, None, note=r.note))  # the reader's own "which?" if any
    turn.ask(qid, note or t("dialog_understanding.which", turn.lang))
    turn.replies[-1].choices = [
        Choice(value=f"{qid}:{_button_value(c)}", label=q.show(c, turn.lang))
        for c in r.candidates
        if q.fits_model(c)
    ] + [c for c in turn.replies[-1].choices if c.value.endswith(":?")]
    return "asking"


def _button_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _guide(turn: Turn, qid: str) -> None:
    """ "Don't know": where to find the figure, the question again, and a way to skip it. Asked
    again on the same question, a short reply: the guidance was already given."""
    s = turn.s
    s.last.outcome = "help"
    q = questions()[qid]
    if co2_dialog.start(turn, qid):  # the CO2 figures can be estimated from the equipment
        return
    if qid in s.guided:
        turn.ask(
            qid,
            t(
                "dialog_understanding.unknown_again" if q.skippable else "dialog.cannot_skip",
                turn.lang,
            ),
        )
    else:
        s.guided.append(qid)
        turn.ask(
            qid,
            "\n".join(
                [t("dialog.unknown_prefix", turn.lang), t(f"question.{qid}.unknown", turn.lang)]
            ),
        )
    if q.skippable:
        turn.replies[-1].choices.append(turn.button("dialog.buttons.skip", "/skip"))


def _skip(turn: Turn) -> str:
    """Leave the awaited question open: the verdict then says what is still to confirm."""
    qid = turn.s.awaiting
    q = questions()[qid]
    if not q.skippable:
        turn.s.last.outcome = "ignored"
        turn.ask(qid, t("dialog.cannot_skip", turn.lang))
        return "asking"
    skip = [qid, *q.skip_also]
    turn.s.skipped = [f for f in turn.s.skipped if f not in skip] + skip
    turn.s.last.outcome = "command"
    prefix = t("dialog.skipped", turn.lang, short=t(f"question.{qid}.short", turn.lang))
    return turn.proceed(prefix, trigger="skip")


def _near_limit_note(turn: Turn, qid: str, value: int) -> str:
    applicant = next(r for r in turn.verdict().reasons if r.criterion == "applicant")
    limits = [applicant.params.get(p) for p in LIMIT_PARAMS[qid]]
    near = [x for x in limits if x is not None and abs(Decimal(value) - x) <= NEAR_LIMIT * x]
    if not near:
        return ""
    return t("dialog.near_limit", turn.lang, limit=turn.show(qid, near[0]))


def _back(turn: Turn) -> str:
    s = turn.s
    if s.awaiting in s.answers:  # changing an answer: /back leaves it as it was
        return turn.proceed(t("dialog.edit_cancelled", turn.lang))
    if not s.history:
        turn.ask(s.awaiting or turn.verdict().missing[0], t("dialog.back_at_start", turn.lang))
        return "asking"
    qid = s.history.pop()
    old = s.answers.pop(qid)
    s.verdict = None
    turn.ask(qid, t("dialog.back_to", turn.lang, value=turn.show(qid, old)))
    return "asking"


def _edit(turn: Turn, qid: str) -> str | None:
    s = turn.s
    if qid not in s.answers and qid not in s.skipped:
        return None
    s.verdict = None
    prefix = t("dialog.edit_start", turn.lang, short=t(f"question.{qid}.short", turn.lang))
    current = (
        turn.show(qid, s.answers[qid]) if qid in s.answers else t("dialog.skipped_value", turn.lang)
    )
    turn.ask(qid, prefix + t("dialog.current_value", turn.lang, value=current))
    return "asking"


def _fresh(turn: Turn, key: str) -> str:
    s = turn.s
    s.answers, s.history, s.skipped, s.verdict, s.approx, s.bounds = {}, [], [], None, [], {}
    s.confirming, s.pending, s.asked, s.guided = None, [], [], []
    s.phase = "asking"  # the reference number from the start: people who drop out phone too
    turn.ask(turn.verdict().missing[0], "\n".join([t(key, turn.lang), *turn.reference_lines()]))
    return "asking"


def _refuse(turn: Turn) -> str:
    """A command that makes no sense here: say so, and show again what is expected."""
    turn.s.last.outcome = "ignored"
    turn.say("dialog.not_now")
    _repeat(turn)
    return turn.s.phase


def _repeat(turn: Turn) -> None:
    """Show again what the user is expected to do now."""
    if turn.s.confirming:
        _show_read_back(turn)
    elif turn.s.awaiting:
        turn.ask(turn.s.awaiting)
    elif turn.s.phase == "verdict":
        turn.say("dialog.after_verdict", turn.after_verdict_buttons())


def understand(qid: str, text: str, answers: dict, lang: str) -> Reading:
    """The reader (dialogs/understanding.py), imported on the first typed answer: a start,
    and button presses, do not need it."""
    # An import statement, not a look-up in sys.modules: it waits while another thread is
    # still importing the module (the look-up could find it half made).
    from dialogs.understanding import understand as read

    return read(qid, text, answers, lang)


def step(
    state: State, inp: UserInput, on: dt.date | None = None, sub: bool = True
) -> tuple[State, list[Reply]]:
    """Apply one user input. Never raises on user input; returns the new state and replies.
    While the CO2 estimate is open, it reads the input first (`sub=False`: it hands back).
    Without a date, the day in Japan when the step begins (one date for the whole step)."""
    on = on or today()
    with texts_on(on):  # the texts quote the ruleset the verdict uses
        if sub and state.co2 is not None:
            return co2_dialog.step(state, inp, on)
        return _step(state, inp, on)


def working_copy(state: State) -> State:
    """The state a step changes: a deep copy of its argument (which must not change), except
    the buttons last shown and the last interpretation: a step reads the buttons from its
    argument and sets both (`last` first thing, `offered` last), so they start as None."""
    return copied(state, blank=("offered", "last"))


def _step(state: State, inp: UserInput, on: dt.date | None) -> tuple[State, list[Reply]]:
    turn = Turn(working_copy(state), on)
    s = turn.s
    s.last = Interpretation(question=s.awaiting, outcome="command")
    kind, payload = read(state, inp)
    if kind == "command":
        name, _, arg = payload[1:].partition(" ")
        s.last.command = name
    elif s.phase == "confirming" and kind == "text":  # a reply to the read-back, or a new answer
        name, arg = _readback_reply(turn, payload), ""
    elif s.phase in ("asking", "confirming"):
        name, arg = "answer", ""
    elif s.phase == "verdict":
        name, arg = "chat", ""
    else:
        name, arg = "begin", ""
    if name == "start" and (s.phase == "start" or (s.phase == "cancelled" and not s.answers)):
        name = "begin"
    elif name == "start" and not s.history and s.phase in ("asking", "confirming"):
        name = "continue"  # nothing to resume: just ask again
    if name in ("back", "edit", "skip", "cancel", "restart") and s.confirming:
        s.confirming, s.pending = None, []  # the reading read back is dropped, not recorded
    dest = route(s.phase, name)
    if dest is None:
        _refuse(turn)
    elif name == "answer":
        dest = _answer(turn, kind, payload)
    elif name == "confirm":
        dest = _confirm(turn)
    elif name == "deny":
        dest = _deny(turn)
    elif name == "unclear":  # a yes that says something else: the buttons decide
        s.last.outcome = "reask"
        _show_read_back(turn, t("dialog_understanding.unclear", turn.lang))
    elif name == "begin":
        s.last.outcome = "start"
        dest = _fresh(turn, "dialog.welcome")
    elif name == "restart":
        dest = _fresh(turn, "dialog.restarted")
    elif name == "skip":
        dest = _skip(turn)
    elif name == "keep":  # the answer awaited is already given (an estimate): go on with it
        dest = turn.proceed(trigger="keep") if s.awaiting in s.answers else _refuse(turn)
    elif name == "back":
        dest = _back(turn)
    elif name == "edit":
        dest = _edit(turn, arg.strip()) or _refuse(turn)
    elif name == "cancel" and s.phase == "verdict":  # the screening is complete: keep it so
        turn.say("dialog.goodbye")
    elif name == "cancel":  # the answers are kept: continue, summary and back still work
        s.awaiting = None
        turn.say(
            "dialog.cancelled",
            [
                turn.button("dialog.buttons.continue", "/continue"),
                turn.button("dialog.buttons.summary", "/summary"),
                turn.button("dialog.buttons.restart", "/restart"),
            ],
        )
    elif name == "help":
        turn.say("dialog.help")
        _repeat(turn)
    elif name == "why":
        if s.confirming:
            turn.say(f"question.{s.awaiting}.why")
            _repeat(turn)
        elif s.awaiting:
            turn.ask(s.awaiting, t(f"question.{s.awaiting}.why", turn.lang))
        else:
            turn.say("dialog.why_none")
    elif name == "summary":
        _summary(turn)
    elif name == "start":
        turn.say(
            "dialog.resume_offer",
            [
                turn.button("dialog.buttons.continue", "/continue"),
                turn.button("dialog.buttons.restart", "/restart"),
            ],
            count=len(s.history),
        )
    elif name == "continue" and s.phase == "cancelled":
        dest = turn.proceed(t("dialog.resumed", turn.lang), trigger="continue")
    elif name == "continue":  # where the owner left off: the answers so far, then the question
        turn.replies.append(
            Reply(
                key="dialog.resumed",
                text="\n\n".join([t("dialog.resumed", turn.lang), turn.summary_text()]),
            )
        )
        _repeat(turn)
    elif name == "checklist":  # the adapter sends the document after it (dialogs/checklist.py)
        turn.say(CHECKLIST_KEY, turn.after_verdict_buttons())
    elif name == "contact":
        turn.say("takeaway.contact", reference=_reference_note(turn))
        _repeat(turn)
    elif name == "chat":
        s.last.outcome = "ignored"
        _repeat(turn)
    s.phase = dest or s.phase
    for reply in reversed(turn.replies):
        if reply.choices:
            s.offered = reply.choices
            break
    else:
        s.offered = []
    return s, turn.replies


def _reference_note(turn: Turn) -> str:
    if not turn.s.reference:
        return ""
    return t("takeaway.contact_reference", turn.lang, reference=turn.s.reference)


@lru_cache(maxsize=4096)
def _left_by_items(items: tuple, skipped: tuple[str, ...], on: dt.date | None) -> int:
    """_most_left by the answers as (field, type, value), in the state's order (the same
    answers in another order: another entry, the same result): no JSON made on a hit."""
    answers = {f: v for f, _, v in items}
    return _most_left(json.dumps(answers, sort_keys=True), skipped, on)


@lru_cache(maxsize=4096)
def _most_left(answers_json: str, skipped: tuple[str, ...], on: dt.date | None) -> int:
    """The most questions still to be asked on any way to a verdict. While a hub answer
    (entity type, project type) is open, the rules list what any of its values could need;
    the longest single way is one question for the hub plus the longest of its worlds
    (rules.engine.most_left)."""
    return most_left(json.loads(answers_json), skipped, on)


def _summary(turn: Turn) -> None:
    buttons = [
        Choice(
            value=f"/edit {f}",
            label=t("dialog.edit_button", turn.lang, short=t(f"question.{f}.short", turn.lang)),
        )
        for f in turn.summary_fields()
    ]
    turn.replies.append(
        Reply(
            key="dialog.summary_title",
            text=turn.summary_text(),
            choices=buttons + [turn.button("dialog.buttons.continue", "/continue")],
        )
    )
