"""`subsidy-bot console`: the dialog in a terminal, for staff. The same engine, wording and
database as Telegram (channel "console"). Three modes: interactive (numbered choices; resumes
the last unfinished conversation unless --new), --jsonl (one JSON object per bot turn, for
programs), and --script FILE (a scenario with expectations, reported pass/fail)."""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import json
import sys
import uuid
from pathlib import Path

from bot.settings import load
from bot.storage import Storage
from dialogs.engine import NUMERIC, step
from dialogs.io import Reply, State, UserInput
from dialogs.questions import questions
from locales import default_lang, t

CHANNEL = "console"


def configure(parser) -> None:
    parser.add_argument("--new", action="store_true", help="start a fresh conversation")
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="read one message per stdin line, write one JSON object per turn",
    )
    parser.add_argument("--script", type=Path, help="run a scenario YAML file and report")
    parser.add_argument("--db", type=Path, help="SQLite file (default: SUBSIDY_DB)")
    parser.add_argument(
        "--date", type=dt.date.fromisoformat, help="evaluation date YYYY-MM-DD (default: today)"
    )
    parser.add_argument("--lang", choices=["ja", "en"], help="language (default: SUBSIDY_LANG)")


class Session:
    """One console conversation backed by the database: send an input, get the replies."""

    def __init__(self, storage: Storage, chat_id: str, lang: str, on: dt.date | None, new: bool):
        self.storage, self.chat_id, self.lang = storage, chat_id, lang
        self.step = functools.partial(step, on=on)
        resume = not new and storage.last_unfinished(CHANNEL, chat_id)
        if not resume:
            storage.start_new(CHANNEL, chat_id, None, lang)
        self.opening = "/continue" if resume else "/start"

    def send(self, inp: UserInput) -> tuple[State, list[Reply]]:
        handled = self.storage.handle(
            CHANNEL, self.chat_id, None, uuid.uuid4().hex, inp, self.step, lang=self.lang
        )
        return handled.state, handled.replies


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


def main(args) -> int:
    settings = load()
    lang = args.lang or default_lang()
    storage = Storage(args.db or settings.subsidy_db)
    if args.script:
        from bot.scenario import run_file

        return run_file(args.script, lang=lang, date=args.date)
    if args.jsonl:
        session = Session(storage, f"jsonl-{uuid.uuid4().hex[:12]}", lang, args.date, new=True)
        print(
            json.dumps(
                turn_json(*session.send(UserInput(text=session.opening))), ensure_ascii=False
            ),
            flush=True,
        )
        for line in sys.stdin:
            out = turn_json(*session.send(UserInput(text=line.rstrip("\r\n"))))
            print(json.dumps(out, ensure_ascii=False), flush=True)
        return 0
    session = Session(storage, f"staff-{getpass.getuser()}", lang, args.date, new=args.new)
    print(render(*session.send(UserInput(text=session.opening))))
    while True:
        try:
            line = input(t("console.prompt", lang))
        except (EOFError, KeyboardInterrupt):
            print("\n" + t("console.bye", lang))
            return 0
        print(render(*session.send(UserInput(text=line))))
