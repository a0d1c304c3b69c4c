"""`subsidy-bot console`: the dialog in a terminal, for staff. The same engine, wording and
database as Telegram (channel "console"). Three modes: interactive (numbered choices; a new
conversation unless --resume [REF]), --jsonl (one JSON object per bot turn, for programs), and
--script FILE (a scenario with expectations, reported pass/fail). Conversations run by programs
(--jsonl, scenarios) are marked as tests, which statistics leave out."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from pathlib import Path

from bot import MAX_INPUT_CHARS
from bot.console.session import ResumeError, Session, render, turn_json
from bot.storage import Storage
from dialogs.io import Reply, State, UserInput
from locales import default_lang, t
from rules.clock import today


def configure(parser) -> None:
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="REF",
        help="continue your last unfinished conversation, or the one with reference number REF",
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="read one message per stdin line, write one JSON object per turn",
    )
    parser.add_argument("--script", type=Path, help="run a scenario YAML file and report")
    parser.add_argument(
        "--pdf", type=Path, metavar="FILE", help="on leaving, write the checklist PDF there"
    )
    parser.add_argument("--db", type=Path, help="SQLite file (default: SUBSIDY_DB)")
    parser.add_argument(
        "--date", type=dt.date.fromisoformat, help="evaluation date YYYY-MM-DD (default: today)"
    )
    parser.add_argument("--lang", choices=["ja", "en"], help="language (default: SUBSIDY_LANG)")


def main(args) -> int:
    lang = args.lang or default_lang()
    storage = Storage(args.db or _db_path())
    if args.script:
        from bot.console.scenario import run_file

        return run_file(args.script, lang=lang, date=args.date)
    # Undecodable bytes (a wrong terminal encoding, a binary file) become U+FFFD: the dialog
    # re-asks that line instead of the runner dying on it and losing the rest.
    sys.stdin.reconfigure(errors="replace")
    if args.jsonl:
        try:
            state = _jsonl(storage, lang, args.date)
        except KeyboardInterrupt:  # Ctrl-C: every line so far is stored; no traceback
            return 130
        return write_pdf(state, args.pdf, lang)
    who = f"staff-{getpass.getuser()}"
    session = None
    if args.resume is not None:
        try:
            session = Session.resume(storage, who, lang, args.date, args.resume or None)
        except ResumeError as exc:
            print(exc, file=sys.stderr)
            return 1
        if session is None:
            print(t("takeaway.console.resumed_none", lang))
    session = session or Session.new(storage, who, lang, args.date)
    state, replies = session.send(UserInput(text=session.opening))
    print(render(state, replies))
    while True:
        try:
            line = input(t("console.prompt", lang))
        except (EOFError, KeyboardInterrupt):
            print("\n" + _bye(state, lang))
            return write_pdf(state, args.pdf, lang)
        state, replies = _send(session, state, line)
        print(render(state, replies))


def _db_path() -> Path:
    """SUBSIDY_DB as the settings read it, without loading pydantic-settings (~15 ms, a good
    part of the start) when the environment names it: the environment comes before `.env`
    there, and its names are matched ignoring case (the last one wins)."""
    found = [value for name, value in os.environ.items() if name.lower() == "subsidy_db"]
    if found:
        return Path(found[-1])
    from bot.settings import load

    return load().subsidy_db


def _bye(state: State, lang: str) -> str:
    """--resume alone continues only an unfinished conversation: a finished one needs its number."""
    if state.verdict is not None and state.reference:
        return t("review.console_bye_finished", lang, reference=state.reference)
    return t("console.bye", lang)


def _send(session: Session, state: State, line: str) -> tuple[State, list[Reply]]:
    """One typed line; over MAX_INPUT_CHARS it is refused (and not stored), as on Telegram."""
    if len(line) > MAX_INPUT_CHARS:
        text = t("robustness.console.too_long", session.lang, max=MAX_INPUT_CHARS)
        return state, [Reply(key="robustness.console.too_long", text=text)]
    return session.send(UserInput(text=line))


def _jsonl(storage: Storage, lang: str, on: dt.date | None) -> State:
    """A conversation run by a program (marked as a test); returns its last state."""
    session = Session.new(storage, "jsonl", lang, on, test=True)
    state, replies = session.send(UserInput(text=session.opening))
    print(json.dumps(turn_json(state, replies), ensure_ascii=False), flush=True)
    for line in sys.stdin:
        state, replies = _send(session, state, line.rstrip("\r\n"))
        print(json.dumps(turn_json(state, replies), ensure_ascii=False), flush=True)
    return state


def write_pdf(state: State, path: Path | None, lang: str) -> int:
    """--pdf FILE: the checklist of the conversation just finished (status 1 without a
    verdict: there is nothing to check off yet)."""
    if path is None:
        return 0
    from bot.checklist_pdf import checklist_pdf

    data = checklist_pdf(state, today())
    if data is None:
        print(t("takeaway.console.pdf_no_verdict", lang, path=path), file=sys.stderr)
        return 1
    path.write_bytes(data)
    print(t("takeaway.console.pdf_written", lang, path=path), file=sys.stderr)
    return 0
