"""One console conversation backed by the database, and how its turns are shown (numbered
text for people, JSON for programs). Shared by the runner and the scenario files.

Each console conversation is a chat of its own (`<who>:<random>`), so starting one never ends
another, and `--resume` finds the last unfinished one of the same person, or the one with a
given reference number."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from bot.delivery import Channel, Delivery, Inbound
from bot.storage import Storage, normalize_reference
from dialogs.checklist import with_checklist
from dialogs.engine import numbers_select, step
from dialogs.io import Reply, State, UserInput
from locales import t
from rules.clock import today

CHANNEL = "console"


class ConsoleChannel(Channel):
    """The console shows the replies `commit` returns at once: nothing waits in an outbox."""

    name = CHANNEL
    outbox = False


class ResumeError(Exception):
    """The conversation asked for cannot be resumed (the message says why)."""


class Session:
    """One console conversation backed by the database: send an input, get the replies."""

    def __init__(self, storage: Storage, chat_id: str, lang: str, on: dt.date | None, opening: str):
        self.storage, self.chat_id, self.lang, self.opening = storage, chat_id, lang, opening
        self.delivery = Delivery(storage, ConsoleChannel(), functools.partial(step, on=on), lang)

    @classmethod
    def new(
        cls, storage: Storage, who: str, lang: str, on: dt.date | None, test: bool = False
    ) -> Session:
        """A fresh conversation; `test` marks one run by a program (left out of statistics)."""
        chat_id = f"{who}:{uuid.uuid4().hex[:12]}"
        storage.start_new(CHANNEL, chat_id, None, lang, test=test)
        return cls(storage, chat_id, lang, on, "/start")

    @classmethod
    def resume(
        cls, storage: Storage, who: str, lang: str, on: dt.date | None, reference: str | None
    ) -> Session | None:
        """The conversation with `reference`, or without one the person's last unfinished
        conversation (None when there is none). Opens with the answers so far."""
        if reference is None:
            row = storage.find(channel=CHANNEL, chat_prefix=f"{who}:")
            return row and cls(storage, row["chat_id"], lang, on, "/continue")
        canonical = normalize_reference(reference)
        row = canonical and storage.find(reference=canonical)
        if not row or row["channel"] != CHANNEL:
            raise ResumeError(t("takeaway.console.not_found", lang, reference=reference))
        current = storage.current(CHANNEL, row["chat_id"])
        if current is None or current[0] != row["id"]:
            raise ResumeError(t("takeaway.console.cannot_resume", lang, reference=canonical))
        return cls(storage, row["chat_id"], lang, on, "/continue")

    def send(self, inp: UserInput) -> tuple[State, list[Reply]]:
        turn = self.delivery.commit(Inbound(self.chat_id, None, uuid.uuid4().hex, None, inp))
        return turn.state, with_checklist(turn.state, turn.replies, today())


def turn_json(state: State, replies: list[Reply]) -> dict:
    """The --jsonl shape of one bot turn. `answers` is the rules command's input JSON (absent
    fields omitted); `confirming` is the reading being read back, else None."""
    verdict = next((r.verdict for r in replies if r.verdict), None)
    confirming = state.confirming
    return {
        "messages": [{"text": r.text, "choices": [c.label for c in r.choices]} for r in replies],
        "awaiting": state.awaiting,
        "verdict": verdict,
        "answers": dict(state.answers),
        "confirming": confirming and {"field": confirming["field"], "value": confirming["value"]},
    }


def render(state: State, replies: list[Reply]) -> str:
    """Numbered choices for people at a terminal (typing the number selects). While a number
    is being asked, a typed number is the answer, so the buttons are shown unnumbered (the
    summary's edit list excepted: no number is asked there)."""
    numbered = numbers_select(state)
    lines = []
    for r in replies:
        lines.append(r.text)
        lines += [
            f"  {n}. {c.label}" if numbered else f"  [{c.label}]"
            for n, c in enumerate(r.choices, 1)
        ]
        lines.append("")
    return "\n".join(lines)
