"""`subsidy-bot console`: the dialog in a terminal, for staff. The same engine, wording and
database as Telegram (channel "console"). Three modes: interactive (numbered choices; resumes
the last unfinished conversation unless --new), --jsonl (one JSON object per bot turn, for
programs), and --script FILE (a scenario with expectations, reported pass/fail)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
import uuid
from pathlib import Path

from bot.console.session import Session, render, turn_json
from bot.settings import MAX_INPUT_CHARS, load
from bot.storage import Storage
from dialogs.io import Reply, State, UserInput
from locales import default_lang, t


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


def main(args) -> int:
    settings = load()
    lang = args.lang or default_lang()
    storage = Storage(args.db or settings.subsidy_db)
    if args.script:
        from bot.console.scenario import run_file

        return run_file(args.script, lang=lang, date=args.date)
    # Undecodable bytes (a wrong terminal encoding, a binary file) become U+FFFD: the dialog
    # re-asks that line instead of the runner dying on it and losing the rest.
    sys.stdin.reconfigure(errors="replace")
    if args.jsonl:
        try:
            return _jsonl(storage, lang, args.date)
        except KeyboardInterrupt:  # Ctrl-C: every line so far is stored; no traceback
            return 130
    session = Session(storage, f"staff-{getpass.getuser()}", lang, args.date, new=args.new)
    state, replies = session.send(UserInput(text=session.opening))
    print(render(state, replies))
    while True:
        try:
            line = input(t("console.prompt", lang))
        except (EOFError, KeyboardInterrupt):
            print("\n" + t("console.bye", lang))
            return 0
        state, replies = _send(session, state, line)
        print(render(state, replies))


def _send(session: Session, state: State, line: str) -> tuple[State, list[Reply]]:
    """One typed line; over MAX_INPUT_CHARS it is refused (and not stored), as on Telegram."""
    if len(line) > MAX_INPUT_CHARS:
        text = t("robustness.console.too_long", session.lang, max=MAX_INPUT_CHARS)
        return state, [Reply(key="robustness.console.too_long", text=text)]
    return session.send(UserInput(text=line))


def _jsonl(storage: Storage, lang: str, on: dt.date | None) -> int:
    session = Session(storage, f"jsonl-{uuid.uuid4().hex[:12]}", lang, on, new=True)
    state, replies = session.send(UserInput(text=session.opening))
    print(json.dumps(turn_json(state, replies), ensure_ascii=False), flush=True)
    for line in sys.stdin:
        state, replies = _send(session, state, line.rstrip("\r\n"))
        print(json.dumps(turn_json(state, replies), ensure_ascii=False), flush=True)
    return 0
