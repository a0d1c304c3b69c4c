"""One console conversation backed by the database, and how its turns are shown (numbered
text for people, JSON for programs). Shared by the runner and the scenario files."""

from __future__ import annotations

import datetime as dt
import functools
import uuid

from bot.delivery import Channel, Delivery, Inbound
from bot.storage import Storage
from dialogs.engine import NUMERIC, step
from dialogs.io import Reply, State, UserInput
from dialogs.questions import questions

CHANNEL = "console"


class ConsoleChannel(Channel):
    """The console shows the replies `commit` returns at once: nothing waits in an outbox."""

    name = CHANNEL
    outbox = False


class Session:
    """One console conversation backed by the database: send an input, get the replies."""

    def __init__(self, storage: Storage, chat_id: str, lang: str, on: dt.date | None, new: bool):
        self.storage, self.chat_id, self.lang = storage, chat_id, lang
        self.delivery = Delivery(storage, ConsoleChannel(), functools.partial(step, on=on), lang)
        resume = not new and storage.last_unfinished(CHANNEL, chat_id)
        if not resume:
            storage.start_new(CHANNEL, chat_id, None, lang)
        self.opening = "/continue" if resume else "/start"

    def send(self, inp: UserInput) -> tuple[State, list[Reply]]:
        turn = self.delivery.commit(Inbound(self.chat_id, None, uuid.uuid4().hex, None, inp))
        return turn.state, turn.replies


def turn_json(state: State, replies: list[Reply]) -> dict:
    """The --jsonl shape of one bot turn."""
    verdict = next((r.verdict for r in replies if r.verdict), None)
    return {
        "messages": [{"text": r.text, "choices": [c.label for c in r.choices]} for r in replies],
        "awaiting": state.awaiting,
        "verdict": verdict,
    }


def render(state: State, replies: list[Reply]) -> str:
    """Numbered choices for people at a terminal (typing the number selects). While a number
    is being asked, a typed number is the answer, so the buttons are shown unnumbered."""
    numbered = not (state.awaiting and questions()[state.awaiting].kind in NUMERIC)
    lines = []
    for r in replies:
        lines.append(r.text)
        lines += [
            f"  {n}. {c.label}" if numbered else f"  [{c.label}]"
            for n, c in enumerate(r.choices, 1)
        ]
        lines.append("")
    return "\n".join(lines)
