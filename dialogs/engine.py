"""`step(state, input) -> (state, replies)`: the whole conversation as one pure function.

Commands are recognised first, in one place; the machine (machine.py) says where a trigger
leads; the rules say what to ask next (`missing[0]`) and when to stop. No channel, clock or
database in here: adapters pass the evaluation date and store what comes back."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from typing import Any

from dialogs.io import Choice, Interpretation, Reply, State, UserInput
from dialogs.machine import route
from dialogs.parsing import Parsed, normalize
from dialogs.questions import command_words, questions
from dialogs.render import verdict_json
from locales import has, t
from rules import Verdict, evaluate, relevant_fields

NUMERIC = ("money", "count", "tonnes")
CHECKLIST_KEY = "takeaway.checklist.ready"  # adapters send the checklist after this reply
NEAR_LIMIT = Decimal("0.1")  # an estimate within 10% of a size limit gets a "please check" note
LIMIT_PARAMS = {"capital_yen": "capital_max_yen", "employees": "employees_max"}


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
        return evaluate(self.s.answers, on=self.on)

    def ask(self, qid: str, prefix: str = "") -> None:
        """Ask a question; a prefix (echo, re-ask reason) shares its message."""
        q = questions()[qid]
        self.s.awaiting = qid
        if q.kind in NUMERIC:
            choices = [self.button("dialog.buttons.unknown", f"{qid}:?")]
        else:
            choices = [Choice(value=f"{qid}:{v}", label=label) for v, label in q.options(self.lang)]
        h = self.s.history  # an answer being changed keeps its place in the count
        progress = t(
            "dialog.progress",
            self.lang,
            n=(h.index(qid) if qid in h else len(h)) + 1,
            left=max(len(self.verdict().missing), 1),
        )
        text = "\n\n".join(p for p in (prefix, q.text(self.s.answers, self.lang) + progress) if p)
        self.replies.append(Reply(key=f"question.{qid}.text", text=text, choices=choices))

    def show(self, qid: str, value: Any) -> str:
        return questions()[qid].show(value, self.lang)

    # --- what the user sees at the end -------------------------------------------------------
    def next_question(self, verdict: Verdict) -> str | None:
        """The rules' first missing field, passing over those the user chose to skip."""
        return next((f for f in verdict.missing if f not in self.s.skipped), None)

    def shown_answer(self, qid: str) -> str:
        """An answer as the summary shows it: estimates marked, skipped ones said so."""
        if qid not in self.s.answers:
            return t("dialog.skipped_value", self.lang)
        value = self.show(qid, self.s.answers[qid])
        return t("dialog.approx_value", self.lang, value=value) if qid in self.s.approx else value

    def summary_fields(self) -> list[str]:
        """Answered and skipped questions, in the order they were asked."""
        skipped = [f for f in self.s.skipped if f not in self.s.history]
        return self.s.history + sorted(skipped, key=list(questions()).index)

    def summary_text(self) -> str:
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
        return "\n".join([title, *lines, *self.reference_lines()])

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
        summary = "\n\n".join(p for p in (prefix, self.summary_text()) if p)
        self.replies.append(Reply(key="dialog.summary_title", text=summary))
        shown = {
            "eligible": {"met"},
            "ineligible": {"not_met"},
            "undetermined": {"unknown", "not_met"},
        }[verdict.status]
        lines = [
            t(f"verdict.title.{verdict.status}", self.lang),
            t("verdict.reasons_title", self.lang),
        ]
        lines += [
            t("verdict.reason_line", self.lang, message=r["message"], clause=r["clause"])
            for r in vj["reasons"]
            if r["status"] in shown
        ]
        notes = list(vj["warnings"])
        if self.s.approx:  # a verdict resting on estimates deserves a reminder
            notes.append(
                t(
                    "verdict.estimates",
                    self.lang,
                    answers=t("dialog.list_joiner", self.lang).join(
                        t(f"question.{f}.short", self.lang) for f in self.s.approx
                    ),
                )
            )
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


def next_steps(verdict: dict, lang: str, documents: bool = True) -> list[str]:
    """What to do now (from the verdict JSON): the text for its status, the documents past
    calls asked for when eligible (unless the caller lists them itself, as the checklist
    does), and for an ineligible one the advice for each criterion that ruled it out."""
    lines = [t(f"verdict.next.{verdict['status']}", lang)]
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


def numbers_select(state: State) -> bool:
    """Whether a typed number picks a shown choice. While a number is asked it is the answer,
    except when the choices shown are the summary's edit list: "2" there is never "2人"."""
    if state.awaiting is None or questions()[state.awaiting].kind not in NUMERIC:
        return True
    return any(c.value.startswith("/edit ") for c in state.offered)


def read(state: State, inp: UserInput) -> tuple[str, str | None]:
    """(kind, payload): ("command", "/edit capital_yen"), ("button", "industry:retail"),
    or ("text", raw). Typing a shown label exactly, or its number, counts as pressing it."""
    if inp.choice is not None:
        return ("command", inp.choice) if inp.choice.startswith("/") else ("button", inp.choice)
    text = (inp.text or "").strip()
    key = normalize(text).strip("!！。.")
    word = _command_index().get(key) or _command_index().get(key.split(" ")[0])
    if word and (word != "edit" or " " in key):
        arg = key.split(" ", 1)[1] if word == "edit" else ""
        return "command", f"/{word} {arg}".strip()
    labels = {normalize(c.label): c.value for c in state.offered}
    if key in labels:
        return read(state, UserInput(choice=labels[key]))
    button_no = key.isascii() and key.isdigit() and len(key) <= 3  # "1" to "999", nothing odd
    if numbers_select(state) and button_no and 1 <= int(key) <= len(state.offered):
        return read(state, UserInput(choice=state.offered[int(key) - 1].value))
    return "text", text


# --- handlers, one per trigger -------------------------------------------------------------
def _answer(turn: Turn, kind: str, payload: str) -> str:
    s = turn.s
    qid = s.awaiting
    q = questions()[qid]
    s.last = Interpretation(question=qid, outcome="reask")
    if kind == "button":
        field, _, value = payload.partition(":")
        if field != qid:
            s.last.outcome = "ignored"
            turn.ask(qid, t("dialog.reask.stale_button", turn.lang))
            return s.phase
        if value == "?":
            s.last.outcome = "help"
            _guide(turn, qid)
            return s.phase
        button = q.from_button(value)
        parsed = Parsed(button is not None, button, error=None if button is not None else "invalid")
    else:
        parsed = q.parse(payload, turn.lang)
    if not parsed.ok:
        if parsed.error == "unknown":
            s.last.outcome = "help"
            _guide(turn, qid)
        else:
            error = parsed.error if parsed.error in ("negative", "too_large") else q.kind
            turn.ask(qid, t(f"dialog.reask.{error}", turn.lang, max=q.max))
        return s.phase
    value, approx = parsed.value, parsed.approx
    json_value = str(value) if isinstance(value, Decimal) else value
    s.answers[qid] = json_value
    s.history = [f for f in s.history if f != qid] + [qid]
    s.skipped = [f for f in s.skipped if f not in (qid, *q.skip_also)]  # asked again
    s.approx = [f for f in s.approx if f != qid] + ([qid] if approx else [])
    kept = set(relevant_fields(s.answers, on=turn.on))
    s.answers = {f: v for f, v in s.answers.items() if f in kept}
    s.history = [f for f in s.history if f in kept]
    s.approx = [f for f in s.approx if f in kept]
    still_open = set(turn.verdict().missing)  # a skipped question may no longer apply
    s.skipped = [f for f in s.skipped if f in still_open]
    s.last = Interpretation(question=qid, outcome="answer", value=json_value)
    echo = t(
        "dialog.echo_approx" if approx else "dialog.echo",
        turn.lang,
        short=t(f"question.{qid}.short", turn.lang),
        value=turn.show(qid, value),
    )
    if approx and qid in LIMIT_PARAMS and (note := _near_limit_note(turn, qid, value)):
        # An estimate next to a limit could tip the verdict: ask once for the exact figure.
        turn.ask(qid, echo + note)
        turn.replies[-1].choices.append(turn.button("dialog.buttons.keep", "/keep"))
        return s.phase
    return turn.proceed(echo)


def _guide(turn: Turn, qid: str) -> None:
    """ "Don't know": where to find the figure, the question again, and a way to skip it."""
    turn.ask(
        qid,
        "\n".join([t("dialog.unknown_prefix", turn.lang), t(f"question.{qid}.unknown", turn.lang)]),
    )
    if questions()[qid].skippable:
        turn.replies[-1].choices.append(turn.button("dialog.buttons.skip", "/skip"))


def _skip(turn: Turn) -> str:
    """Leave the awaited question open: the verdict then says what is still to confirm."""
    qid = turn.s.awaiting
    q = questions()[qid]
    if not q.skippable:
        turn.s.last.outcome = "ignored"
        turn.ask(qid, t("dialog.cannot_skip", turn.lang))
        return turn.s.phase
    skip = [qid, *q.skip_also]
    turn.s.skipped = [f for f in turn.s.skipped if f not in skip] + skip
    turn.s.last.outcome = "command"
    prefix = t("dialog.skipped", turn.lang, short=t(f"question.{qid}.short", turn.lang))
    return turn.proceed(prefix, trigger="skip")


def _near_limit_note(turn: Turn, qid: str, value: int) -> str:
    applicant = next(r for r in turn.verdict().reasons if r.criterion == "applicant")
    limit = applicant.params.get(LIMIT_PARAMS[qid])
    if limit is None or abs(Decimal(value) - limit) > NEAR_LIMIT * limit:
        return ""
    return t("dialog.near_limit", turn.lang, limit=turn.show(qid, limit))


def _back(turn: Turn) -> str:
    s = turn.s
    if s.awaiting in s.answers:  # changing an answer: /back leaves it as it was
        return turn.proceed(t("dialog.edit_cancelled", turn.lang))
    if not s.history:
        turn.ask(s.awaiting or turn.verdict().missing[0], t("dialog.back_at_start", turn.lang))
        return s.phase
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
    turn.s.answers, turn.s.history, turn.s.skipped, turn.s.verdict = {}, [], [], None
    turn.s.phase = "asking"  # the reference number from the start: people who drop out phone too
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
    if turn.s.awaiting:
        turn.ask(turn.s.awaiting)
    elif turn.s.phase == "verdict":
        turn.say("dialog.after_verdict", turn.after_verdict_buttons())


def step(state: State, inp: UserInput, on: dt.date | None = None) -> tuple[State, list[Reply]]:
    """Apply one user input. Never raises on user input; returns the new state and replies."""
    turn = Turn(state.model_copy(deep=True), on)
    s = turn.s
    s.last = Interpretation(question=s.awaiting, outcome="command")
    kind, payload = read(state, inp)
    if kind == "command":
        name, _, arg = payload[1:].partition(" ")
        s.last.command = name
    elif s.phase == "asking":
        name, arg = "answer", ""
    elif s.phase == "verdict":
        name, arg = "chat", ""
    else:
        name, arg = "begin", ""
    if name == "start" and s.phase in ("start", "cancelled"):
        name = "begin"
    elif name == "start" and not s.history and s.phase == "asking":
        name = "continue"  # nothing to resume: just ask again
    dest = route(s.phase, name, decided=False) if name != "answer" else "asking"
    if dest is None:
        _refuse(turn)
    elif name == "answer":
        dest = _answer(turn, kind, payload)
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
    elif name == "cancel":
        s.awaiting = None
        turn.say("dialog.cancelled")
    elif name == "help":
        turn.say("dialog.help")
        _repeat(turn)
    elif name == "why":
        if s.awaiting:
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
