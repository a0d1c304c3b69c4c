"""Durable conversation storage: one SQLite file holding conversations, their event log, the
inputs already handled, the outbox of replies and each chat's channel marks.

This module owns the schema (migrations) and the rows of a conversation; the protocol that
writes a turn (dedup, step, one transaction, send, mark sent) is bot/delivery.py's.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogs.io import Choice, Interpretation, Reply, State, UserInput
from locales import t
from rules.model import shallow_copy

if TYPE_CHECKING:
    from sqlite_utils import Database

Clock = Callable[[], datetime]
Connection = sqlite3.Connection

BUSY_TIMEOUT_MS = 10_000
SQLITE_IOERR = 10  # the primary result code of an I/O error (a failed fsync among them)


class Busy(Exception):
    """The database is being written by a thread or another process (run_batch, wait=False)."""


class StorageError(Exception):
    """A database the bot must not use (damaged, newer, not SQLite): one line for the operator,
    in the operator's language (`text`)."""

    def __init__(self, key: str, **params: Any) -> None:
        super().__init__(key, params)
        self.key, self.params = key, params

    def text(self, lang: str | None = None) -> str:
        return t(f"robustness.storage.{self.key}", lang, **self.params)

    def __str__(self) -> str:
        return self.text()


# --- schema -------------------------------------------------------------------------------
# Each migration brings the schema from version i to i + 1 (i = its index in MIGRATIONS).
# The runner applies it and bumps PRAGMA user_version in the same transaction.
# Never edit a migration that has shipped: append a new one.


def _m1_core(db: Connection) -> None:
    db.executescript(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            channel TEXT NOT NULL CHECK (channel IN ('telegram', 'console')),
            chat_id TEXT NOT NULL,
            user_id TEXT,
            lang TEXT NOT NULL,
            started_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'finished', 'cancelled', 'abandoned')),
            phase TEXT NOT NULL,
            awaiting TEXT,
            verdict_status TEXT,
            ruleset TEXT,
            state_json TEXT NOT NULL CHECK (json_valid(state_json)),
            answers_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(answers_json))
        );
        CREATE INDEX conversations_chat ON conversations (channel, chat_id, id);

        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            question TEXT,
            outcome TEXT,
            raw_text TEXT,
            value_json TEXT,
            command TEXT,
            reply_key TEXT,
            choices_json TEXT,
            verdict_json TEXT,
            input_uid TEXT
        );
        CREATE UNIQUE INDEX events_conversation_seq ON events (conversation_id, seq);
        CREATE TRIGGER events_append_only BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'events are append-only');
        END;

        CREATE TABLE inputs (
            channel TEXT NOT NULL,
            uid TEXT NOT NULL,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            PRIMARY KEY (channel, uid)
        );
        CREATE INDEX inputs_conversation ON inputs (conversation_id);
        """
    )


def _m2_admin_indexes(db: Connection) -> None:
    db.execute("CREATE INDEX conversations_updated_at ON conversations (updated_at)")
    db.execute("CREATE INDEX conversations_status_updated_at ON conversations (status, updated_at)")
    db.execute("CREATE INDEX conversations_user_id ON conversations (user_id)")


def _m3_telegram_chats(db: Connection) -> None:
    """The Telegram adapter's per-chat marks (bot/telegram/chats.py): the message with the live
    inline keyboard and the last update whose replies were all sent. Deleting the conversation
    deletes the row."""
    db.execute(
        """
        CREATE TABLE telegram_chats (
            chat_id TEXT PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            keyboard_message_id INTEGER,
            done_update_id INTEGER,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX telegram_chats_conversation ON telegram_chats (conversation_id)")


def _m4_delivery(db: Connection) -> None:
    """The shared delivery core (bot/delivery.py). Inputs are keyed on the chat too, with a tag
    (message or callback query id) telling a reused update id from a redelivery; the outbox
    holds each turn's replies until they are sent; `chats` generalises telegram_chats to a JSON
    object of marks per channel and chat (Telegram: the live keyboard's message id)."""
    db.execute(
        """
        CREATE TABLE inputs_by_chat (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            uid TEXT NOT NULL,
            tag TEXT,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            at TEXT NOT NULL,
            PRIMARY KEY (channel, chat_id, uid)
        )
        """
    )
    db.execute(
        "INSERT INTO inputs_by_chat SELECT i.channel, c.chat_id, i.uid, NULL, i.conversation_id,"
        " i.at FROM inputs i JOIN conversations c ON c.id = i.conversation_id"
    )
    db.execute("DROP TABLE inputs")
    db.execute("ALTER TABLE inputs_by_chat RENAME TO inputs")
    db.execute("CREATE INDEX inputs_conversation ON inputs (conversation_id)")
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            input_uid TEXT,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'dropped')),
            created_at TEXT NOT NULL,
            done_at TEXT
        )
        """
    )
    db.execute(
        "CREATE INDEX outbox_pending ON outbox (channel, chat_id, id) WHERE status = 'pending'"
    )
    db.execute("CREATE INDEX outbox_conversation ON outbox (conversation_id)")
    db.execute(
        """
        CREATE TABLE chats (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            conversation_id INTEGER NOT NULL
                REFERENCES conversations (id) ON DELETE CASCADE,
            marks_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(marks_json)),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (channel, chat_id)
        )
        """
    )
    db.execute("CREATE INDEX chats_conversation ON chats (conversation_id)")
    db.execute(  # replies of the old marks' turns all count as sent: no outbox rows for them
        "INSERT INTO chats SELECT 'telegram', chat_id, conversation_id,"
        " json_object('keyboard', keyboard_message_id), updated_at FROM telegram_chats"
    )
    db.execute("DROP TABLE telegram_chats")


def _m5_line_channel(db: Connection) -> None:
    """Channel 'line' (bot/line/). SQLite cannot alter a CHECK, and rebuilding conversations
    would cascade-delete its events (foreign keys cannot be switched off inside the migration's
    transaction), so the CHECK is widened in the stored schema, as SQLite's documentation
    allows for loosening a constraint: every existing row still satisfies it."""
    old = "CHECK (channel IN ('telegram', 'console'))"
    new = "CHECK (channel IN ('telegram', 'console', 'line'))"
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'conversations'"
    ).fetchone()
    if old not in sql:
        raise RuntimeError("conversations.channel CHECK not as created by migration 1")
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'conversations'",
            [sql.replace(old, new)],
        )
        db.execute(f"PRAGMA schema_version = {version + 1}")  # other connections reload it
    finally:
        db.execute("PRAGMA writable_schema = OFF")


# --- reference numbers ---------------------------------------------------------------------
# What an owner quotes on the phone: no 0/O, 1/I/L to confuse, no personal data, not a sequence
# (secrets), unique (a UNIQUE column, retried on a clash) and never reused (the issued numbers
# stay in `reference_numbers` when their conversation is deleted).
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_PREFIX = "TC"
REFERENCE_LENGTH = 6  # 31**6 ≈ 887 million numbers
REFERENCE_ATTEMPTS = 20


def new_reference() -> str:
    body = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
    return f"{REFERENCE_PREFIX}-{body[:4]}-{body[4:]}"


def normalize_reference(text: str) -> str | None:
    """A reference number as typed or read out (lower case, spaces, dashes or the prefix left
    out) in its canonical form, or None when it cannot be one."""
    body = "".join(c for c in text.upper() if c.isalnum())
    body = body.removeprefix(REFERENCE_PREFIX) if len(body) > REFERENCE_LENGTH else body
    if len(body) != REFERENCE_LENGTH or any(c not in REFERENCE_ALPHABET for c in body):
        return None
    return f"{REFERENCE_PREFIX}-{body[:4]}-{body[4:]}"


def _issue_reference(db: Connection, at: str) -> str:
    for _ in range(REFERENCE_ATTEMPTS):
        reference = new_reference()
        try:
            db.execute(
                "INSERT INTO reference_numbers (reference, issued_at) VALUES (?, ?)",
                [reference, at],
            )
        except sqlite3.IntegrityError:  # issued before (perhaps to a deleted conversation)
            continue
        return reference
    raise RuntimeError("no free reference number found")  # the space is nearly empty: a bug


def _m6_references_and_tests(db: Connection) -> None:
    """A reference number per conversation (existing ones get theirs now, in their state too)
    and a mark for test conversations (scenario runs, console --jsonl), which statistics leave
    out."""
    db.executescript(
        """
        CREATE TABLE reference_numbers (reference TEXT PRIMARY KEY, issued_at TEXT NOT NULL);
        ALTER TABLE conversations ADD COLUMN reference TEXT;
        ALTER TABLE conversations ADD COLUMN is_test INTEGER NOT NULL DEFAULT 0;
        """
    )
    for row_id, started_at in db.execute(
        "SELECT id, started_at FROM conversations ORDER BY id"
    ).fetchall():
        reference = _issue_reference(db, started_at)
        db.execute(
            "UPDATE conversations SET reference = ?,"
            " state_json = json_set(state_json, '$.reference', ?) WHERE id = ?",
            [reference, reference, row_id],
        )
    db.execute("CREATE UNIQUE INDEX conversations_reference ON conversations (reference)")


# --- compact storage (migration 7) --------------------------------------------------------
# What repeats is stored once. `texts` holds each distinct reply text, choice list and verdict
# JSON (found by a hash of its content), `names` the code words (question ids, outcomes,
# commands, locale keys). The log is two tables, `in_events` (what people sent) and
# `out_events` (the bot's replies, as ids), each row with only its own kind's columns; the view
# `events` gives the rows exactly as they were written (same columns, same bytes), so readers'
# SQL is as it was. A reply text quoting its conversation's reference number is stored with the
# number replaced by REF_MARK (`ref` = 1), and the view puts it back: one row for every
# conversation. A reply written in the same turn as its input stores no time and no input id
# (`at` NULL): the view takes those of the nearest earlier input. Times are stored as
# microseconds since the Unix epoch (an ISO text that would not come back the same is kept as
# written). A conversation's state is stored without its verdict (`verdict_id`, in texts) and
# without its empty fields; `answers_json` is computed from it. Deleting conversations deletes
# the texts no longer used (names are code words, not anyone's data: they stay).
REF_MARK = "\ue000"  # a private-use character: a text that contains it is not templated

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _at_sql(at: str) -> str:
    """SQL: the ISO text of a stored time (`_iso`; a text is shown as it is)."""
    return (
        f"CASE typeof({at}) WHEN 'integer' THEN strftime('%Y-%m-%dT%H:%M:%S', {at} / 1000000,"
        f" 'unixepoch') || printf('.%06d+00:00', {at} % 1000000) ELSE {at} END"
    )


_ITS_INPUT = """(SELECT p.rowid FROM in_events p WHERE p.conversation_id = l.conversation_id
  AND p.seq < l.seq ORDER BY p.seq DESC LIMIT 1)"""

EVENTS_VIEW = f"""
CREATE VIEW events AS
SELECT l.id, l.conversation_id, l.seq, {_at_sql("l.at")} AS at, 'in' AS direction,
  q.name AS question, o.name AS outcome, l.raw_text, l.value_json, m.name AS command,
  NULL AS reply_key, NULL AS choices_json, NULL AS verdict_json, l.input_uid
FROM in_events l
LEFT JOIN names q ON q.id = l.question
LEFT JOIN names o ON o.id = l.outcome
LEFT JOIN names m ON m.id = l.command
UNION ALL
SELECT l.id, l.conversation_id, l.seq, {_at_sql("coalesce(l.at, h.at)")} AS at, 'out' AS direction,
  q.name AS question, NULL AS outcome,
  CASE WHEN l.ref THEN replace(x.body, char({ord(REF_MARK)}), c.reference) ELSE x.body END
    AS raw_text,
  NULL AS value_json, NULL AS command, k.name AS reply_key, ch.body AS choices_json,
  v.body AS verdict_json, CASE WHEN l.at IS NULL THEN h.input_uid ELSE l.input_uid END
FROM out_events l
LEFT JOIN in_events h ON h.rowid = CASE WHEN l.at IS NULL THEN {_ITS_INPUT} END
LEFT JOIN names q ON q.id = l.question
LEFT JOIN names k ON k.id = l.reply_key
LEFT JOIN texts x ON x.id = l.text
LEFT JOIN texts ch ON ch.id = l.choices
LEFT JOIN texts v ON v.id = l.verdict
LEFT JOIN conversations c ON c.id = l.conversation_id
"""

_IN_COLUMNS = (
    "id", "conversation_id", "seq", "at", "question", "outcome", "raw_text", "value_json",
    "command", "input_uid",
)  # fmt: skip
_OUT_COLUMNS = (
    "id", "conversation_id", "seq", "at", "input_uid", "question", "reply_key", "text", "ref",
    "choices", "verdict",
)  # fmt: skip
_INSERT_IN = (
    f"INSERT INTO in_events ({', '.join(_IN_COLUMNS)}) VALUES ({', '.join('?' * len(_IN_COLUMNS))})"
)
_INSERT_OUT = (
    f"INSERT INTO out_events ({', '.join(_OUT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_OUT_COLUMNS))})"
)


def _micros(iso: str) -> int | str:
    """An event time as stored: microseconds since the epoch when the view shows exactly `iso`
    for them (times as Storage.now writes them), else `iso` itself."""
    try:
        micros = (datetime.fromisoformat(iso) - _EPOCH) // _MICRO
    except (ValueError, TypeError):
        return iso
    return micros if _iso(micros) == iso else iso


def _iso(micros: int) -> str:
    """The text `_at_sql` makes of stored microseconds."""
    return (_EPOCH + micros * _MICRO).isoformat(timespec="microseconds")


def _templated(text: str, reference: str | None) -> tuple[str, int]:
    """A reply text as stored, and whether the reference number was taken out of it."""
    if reference and reference in text and REF_MARK not in text:
        return text.replace(reference, REF_MARK), 1
    return text, 0


def _text_hash(body: str) -> int:
    """Finds a text's candidate rows (a CRC: equal hashes are common enough, the body
    decides)."""
    return zlib.crc32(body.encode())


def _intern(
    db: Connection, texts: set[str], names: set[str], known: dict | None = None
) -> tuple[dict, dict]:
    """The ids of `texts` (table texts) and `names` (table names), each added when new: one
    query for both. `known`: ids remembered from earlier look-ups (Storage._ids), used
    and added to."""
    texts, names = texts - {None}, names - {None}
    tid: dict[str, int] = {}
    nid: dict[str, int] = {}
    if known:
        tid = {t: known[0, t] for t in texts if (0, t) in known}
        nid = {n: known[1, n] for n in names if (1, n) in known}
        texts, names = texts - tid.keys(), names - nid.keys()
    if not (texts or names):
        return tid, nid
    hashes = {text: _text_hash(text) for text in texts}
    sql = " UNION ALL ".join(
        [f"SELECT id, body, 0 FROM texts WHERE hash IN ({', '.join('?' * len(hashes))})"]
        * bool(texts)
        + [f"SELECT id, name, 1 FROM names WHERE name IN ({', '.join('?' * len(names))})"]
        * bool(names)
    )
    for row_id, value, is_name in db.execute(sql, [*hashes.values(), *names]):
        if is_name:
            nid[value] = row_id
        elif value in hashes:
            tid[value] = row_id
    for text in texts - tid.keys():
        sql = "INSERT INTO texts (hash, body) VALUES (?, ?)"
        tid[text] = db.execute(sql, [hashes[text], text]).lastrowid
    for name in names - nid.keys():
        nid[name] = db.execute("INSERT INTO names (name) VALUES (?)", [name]).lastrowid
    if known is not None:
        if len(known) > ID_CACHE_SIZE:
            known.clear()
        known.update({(0, t): i for t, i in tid.items()})
        known.update({(1, n): i for n, i in nid.items()})
    return tid, nid


ID_CACHE_SIZE = 20_000  # texts and names whose ids a Storage remembers (then all forgotten)


def _text_ids(db: Connection, texts: set[str]) -> dict[str, int]:
    """The ids of `texts` in table texts, each added when new."""
    return _intern(db, texts, set())[0]


def _name_ids(db: Connection, names: set[str]) -> dict[str, int]:
    """The ids of `names` in table names, each added when new."""
    return _intern(db, set(), names)[1]


def _defaults(model: type[Any]) -> dict[str, Any]:
    return {k: f.get_default(call_default_factory=True) for k, f in model.model_fields.items()}


_STATE_DEFAULTS = _defaults(State)
_STATE_EMPTY = {k for k, v in _STATE_DEFAULTS.items() if v is None or v == [] or v == {}}
_LAST_EMPTY = {k for k, v in _defaults(Interpretation).items() if v is None}
STATE_COLUMNS = ("phase", "lang", "awaiting", "reference")  # state fields with a column
SUBLISTS = ("history", "skipped", "guided", "approx")  # question ids, mostly also in `asked`


def _state_refs(state: dict[str, Any]) -> tuple[str | None, str | None]:
    """What a state (its JSON dict) keeps in texts: its verdict and the buttons offered, as
    JSON (None when empty)."""
    verdict, offered = state.get("verdict"), state.get("offered")
    if offered:
        offered = _choices_json(tuple((c["value"], c["label"]) for c in offered))
    return None if verdict is None else _dumps(verdict), offered or None


@lru_cache(maxsize=1024)  # the questions' buttons, over and over: made once each
def _choices_json(choices: tuple[tuple[str, str], ...]) -> str:
    """A list of choices (value, label) as JSON, as pydantic dumps a list of `Choice`."""
    return _dumps([{"value": value, "label": label} for value, label in choices])


def _state_row(
    db: Connection,
    state: dict[str, Any],
    columns: dict[str, Any],
    last_logged: bool = False,
    known: dict[str, int] | None = None,
    refs: tuple[str | None, str | None] | None = None,
) -> tuple[str, int | None, int | None]:
    """A state (its JSON dict) as stored: (state_json, verdict_id, offered_id). The verdict
    and the buttons offered go to texts; state_json leaves out the fields equal to the row's
    `columns` (STATE_COLUMNS), those empty (None, [], {}) by default, and `last` when
    `last_logged` (the conversation's latest 'in' event holds it); in SUBLISTS a question id
    that is in `asked` is stored as its index there. `known`: text ids looked up already;
    `refs`: `_state_refs(state)`, when made already."""
    verdict, offered = refs or _state_refs(state)
    known = known or {}
    missing = {verdict, offered} - {None} - known.keys()
    texts = known | _text_ids(db, missing) if missing else known  # a turn's: looked up already
    asked: dict[str, int] | None = None  # made when a sublist needs it
    kept: dict[str, Any] = {}
    for key, value in state.items():
        kind = _FIELD_KINDS.get(key, 0)  # a bit set of what to check (one look-up a field)
        if not kind:
            kept[key] = value
            continue
        if kind & _REF or (kind & _COLUMN and key in columns and columns[key] == value):
            continue
        if kind & _LAST:
            if last_logged:
                continue
            value = {k: v for k, v in value.items() if not (k in _LAST_EMPTY and v is None)}
        elif kind & _EMPTY and value == _STATE_DEFAULTS[key]:
            continue
        elif kind & _SUBLIST:
            if asked is None:
                asked = {q: i for i, q in reversed(list(enumerate(state.get("asked") or ())))}
            value = [asked.get(q, q) for q in value]
        kept[key] = value
    return _compact_json(kept), texts.get(verdict), texts.get(offered)


# what _state_row checks of a state's field (a field not named here is kept as it is)
_REF, _COLUMN, _LAST, _EMPTY, _SUBLIST = 1, 2, 4, 8, 16
_FIELD_KINDS = {
    key: (_REF * (key in ("verdict", "offered")) | _COLUMN * (key in STATE_COLUMNS)
          | _LAST * (key == "last") | _EMPTY * (key in _STATE_EMPTY)
          | _SUBLIST * (key in SUBLISTS))
    for key in {"verdict", "offered", "last", *STATE_COLUMNS, *_STATE_EMPTY, *SUBLISTS}
}  # fmt: skip


_LAST_INPUT = """(SELECT json_array(q.name, o.name, l.value_json, m.name) FROM in_events l
  LEFT JOIN names q ON q.id = l.question LEFT JOIN names o ON o.id = l.outcome
  LEFT JOIN names m ON m.id = l.command
  WHERE l.conversation_id = c.id ORDER BY l.seq DESC LIMIT 1)"""
STATE_SQL = f"c.state_json, c.phase, c.lang, c.awaiting, c.reference, v.body, o.body, {_LAST_INPUT}"
STATE_JOINS = "LEFT JOIN texts v ON v.id = c.verdict_id LEFT JOIN texts o ON o.id = c.offered_id"


def _state(state_json: str, *columns: Any) -> State:
    """The State of a conversations row (the columns of STATE_SQL, in order)."""
    state = json.loads(state_json)
    *columns, verdict, offered, last_input = columns
    for key, value in zip(STATE_COLUMNS, columns, strict=True):
        state.setdefault(key, value)
    if verdict is not None:
        state["verdict"] = json.loads(verdict)
    if offered is not None:
        state["offered"] = json.loads(offered)
    asked = state.get("asked") or []
    for key in SUBLISTS:
        if key in state:
            state[key] = [asked[q] if isinstance(q, int) else q for q in state[key]]
    if "last" not in state and last_input is not None:
        question, outcome, value, command = json.loads(last_input)
        value = None if value is None else json.loads(value)
        last = {"question": question, "outcome": outcome, "value": value, "command": command}
        state["last"] = {k: v for k, v in last.items() if v is not None}
    return State.model_validate(state)


def stored_state(db: Connection, conversation_id: int) -> State | None:
    """A conversation's state as stored, read on any connection (read-only ones too)."""
    row = db.execute(
        f"SELECT {STATE_SQL} FROM conversations c {STATE_JOINS} WHERE c.id = ?", [conversation_id]
    ).fetchone()
    return None if row is None else _state(*row)


def _copy_events(db: Connection) -> None:
    """Migration 7: every events row into in_events or out_events, in order."""
    rows = db.execute(
        "SELECT e.id, e.conversation_id, e.seq, e.at, e.direction, e.question, e.outcome,"
        " e.raw_text, e.value_json, e.command, e.reply_key, e.choices_json, e.verdict_json,"
        " e.input_uid, c.reference FROM events e LEFT JOIN conversations c"
        " ON c.id = e.conversation_id ORDER BY e.conversation_id, e.seq"
    )
    last_in: tuple[Any, ...] = ()  # (conversation, at, input_uid) of the last input
    while batch := rows.fetchmany(500):
        texts, names, ins, outs = set(), set(), [], []
        for i, cid, seq, at, direction, q, o, raw, value, cmd, key, ch, v, uid, ref in batch:
            names |= {q, o, cmd, key} - {None}
            if direction != "out":
                last_in = (cid, at, uid)
                ins.append((i, cid, seq, _micros(at), q, o, raw, value, cmd, uid))
                continue
            text, templated = _templated(raw, ref) if raw is not None else (None, 0)
            texts |= {text, ch, v} - {None}
            at, uid = (None, None) if last_in == (cid, at, uid) else (_micros(at), uid)
            outs.append((i, cid, seq, at, uid, q, key, text, templated, ch, v))
        tid, nid = _intern(db, texts, names)
        db.executemany(
            _INSERT_IN,
            [(*r[:4], nid.get(r[4]), nid.get(r[5]), r[6], r[7], nid.get(r[8]), r[9]) for r in ins],
        )
        db.executemany(
            _INSERT_OUT,
            [
                (*r[:5], nid.get(r[5]), nid.get(r[6]), tid.get(r[7]), r[8], tid.get(r[9]),
                 tid.get(r[10]))
                for r in outs
            ],
        )  # fmt: skip


def _m7_compact(db: Connection) -> None:
    """Shared texts and names, the event log as ids behind the view `events`, compact states,
    sent outbox rows deleted, inputs and reference numbers without a rowid (see above)."""
    for sql in (
        "CREATE TABLE texts (id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, body TEXT NOT NULL)",
        "CREATE INDEX texts_hash ON texts (hash)",
        "CREATE TABLE names (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        """CREATE TABLE in_events (
            id INTEGER PRIMARY KEY,  -- one sequence with out_events' (the view's `id`)
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at ANY NOT NULL,  -- microseconds since the epoch (or an ISO text)
            question INTEGER,  -- names
            outcome INTEGER,  -- names
            raw_text TEXT,  -- as received
            value_json TEXT,
            command INTEGER,  -- names
            input_uid TEXT
        )""",
        "CREATE UNIQUE INDEX in_events_conversation_seq ON in_events (conversation_id, seq)",
        """CREATE TABLE out_events (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at ANY,  -- as in_events; NULL: the time and input_uid of the input before it
            input_uid TEXT,
            question INTEGER,  -- names
            reply_key INTEGER,  -- names
            text INTEGER NOT NULL,  -- texts
            ref INTEGER NOT NULL DEFAULT 0,  -- 1: the reference number taken out of `text`
            choices INTEGER,  -- texts
            verdict INTEGER  -- texts
        )""",
        "CREATE UNIQUE INDEX out_events_conversation_seq ON out_events (conversation_id, seq)",
    ):
        db.execute(sql)
    _copy_events(db)
    db.execute("DROP TABLE events")
    db.execute(EVENTS_VIEW)
    for sql in (
        """CREATE TRIGGER in_events_append_only BEFORE UPDATE ON in_events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER out_events_append_only BEFORE UPDATE ON out_events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        """CREATE TRIGGER events_append_only INSTEAD OF UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END""",
        # conversations: the verdict in texts, the state compact, the answers computed
        "ALTER TABLE conversations ADD COLUMN verdict_id INTEGER",  # texts
        "ALTER TABLE conversations ADD COLUMN offered_id INTEGER",  # texts
        # written each turn, read by no query (purge can scan; the admins' SQL filters on
        # expressions of the times, which no index serves)
        "DROP INDEX conversations_updated_at",
        "DROP INDEX conversations_status_updated_at",
    ):
        db.execute(sql)
    rows = db.execute(f"SELECT id, state_json, {', '.join(STATE_COLUMNS)} FROM conversations")
    for row_id, state_json, *columns in rows.fetchall():
        columns = dict(zip(STATE_COLUMNS, columns, strict=True))
        db.execute(
            "UPDATE conversations SET state_json = ?, verdict_id = ?, offered_id = ? WHERE id = ?",
            [*_state_row(db, json.loads(state_json), columns), row_id],
        )
    for sql in (
        "ALTER TABLE conversations DROP COLUMN answers_json",
        "ALTER TABLE conversations ADD COLUMN answers_json TEXT GENERATED ALWAYS AS"
        " (coalesce(json_extract(state_json, '$.answers'), '{}')) VIRTUAL",
        # inputs: the dedup key and what it needs, clustered on the key; deleted with their
        # conversation by Storage (no foreign key: its index would cost more than the table)
        """CREATE TABLE inputs_new (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            uid TEXT NOT NULL,
            tag TEXT,
            conversation_id INTEGER NOT NULL,
            PRIMARY KEY (channel, chat_id, uid)
        ) WITHOUT ROWID""",
        "INSERT INTO inputs_new SELECT channel, chat_id, uid, tag, conversation_id FROM inputs",
        "DROP TABLE inputs",
        "ALTER TABLE inputs_new RENAME TO inputs",
        # outbox: a row lives until its replies are sent (a dropped one stays)
        "DELETE FROM outbox WHERE status = 'sent'",
        """CREATE TRIGGER outbox_sent AFTER UPDATE OF status ON outbox WHEN NEW.status = 'sent'
        BEGIN DELETE FROM outbox WHERE id = NEW.id; END""",
        """CREATE TABLE reference_numbers_new (
            reference TEXT PRIMARY KEY, issued_at TEXT NOT NULL) WITHOUT ROWID""",
        "INSERT INTO reference_numbers_new SELECT reference, issued_at FROM reference_numbers",
        "DROP TABLE reference_numbers",
        "ALTER TABLE reference_numbers_new RENAME TO reference_numbers",
    ):
        db.execute(sql)


def _m8_fewer_pages(db: Connection) -> None:
    """Fewer pages written per turn (each is a 4 KB frame in the WAL, fsynced with the commit):
    the outbox and `chats` clustered on the chat (WITHOUT ROWID, one B-tree each). The outbox's
    id is the event id of its first reply (unique, increasing in every chat); it holds only
    unsent and given-up rows, so its cascade from conversations needs no index of its own."""
    for sql in (
        """CREATE TABLE outbox_new (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            id INTEGER NOT NULL,  -- the first reply's event id
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            input_uid TEXT,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'dropped')),
            created_at TEXT NOT NULL,
            done_at TEXT,
            PRIMARY KEY (channel, chat_id, id)
        ) WITHOUT ROWID""",
        "INSERT INTO outbox_new SELECT o.channel, o.chat_id, e.id, o.conversation_id,"
        " o.input_uid, o.first_seq, o.last_seq, o.sent, o.attempts, o.status, o.created_at,"
        " o.done_at FROM outbox o JOIN out_events e"
        " ON e.conversation_id = o.conversation_id AND e.seq = o.first_seq"
        " WHERE o.status != 'sent'",
        "DROP TABLE outbox",  # its indexes and trigger go with it
        "ALTER TABLE outbox_new RENAME TO outbox",
        """CREATE TABLE chats_new (
            channel TEXT NOT NULL,
            chat_id TEXT NOT NULL,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            marks_json TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(marks_json)),
            updated_at TEXT NOT NULL,
            PRIMARY KEY (channel, chat_id)
        ) WITHOUT ROWID""",
        "INSERT INTO chats_new SELECT channel, chat_id, conversation_id, marks_json, updated_at"
        " FROM chats",
        "DROP TABLE chats",
        "ALTER TABLE chats_new RENAME TO chats",
        "CREATE INDEX chats_conversation ON chats (conversation_id)",
    ):
        db.execute(sql)


MIGRATIONS: list[Callable[[Connection], None]] = [
    _m1_core,
    _m2_admin_indexes,
    _m3_telegram_chats,
    _m4_delivery,
    _m5_line_channel,
    _m6_references_and_tests,
    _m7_compact,
    _m8_fewer_pages,
]
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: Connection, migrations: list[Callable[[Connection], None]] = MIGRATIONS) -> int:
    """Apply the pending migrations, each with its version bump in one transaction."""
    while True:
        db.execute("BEGIN IMMEDIATE")  # read the version under the write lock: no double runs
        try:
            version = schema_version(db)
            if version > len(migrations):
                raise StorageError("newer", version=version, ours=len(migrations))
            if version == len(migrations):
                db.commit()
                return version
            migrations[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.commit()
        except BaseException:
            db.rollback()
            raise


# --- storage ------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _fsync_failed(exc: OSError) -> sqlite3.OperationalError:
    """A failed fsync of the log, as the error a failed COMMIT raises (NotStored for inputs)."""
    return sqlite3.OperationalError(f"disk I/O error (fsync: {exc})")


# json.dumps(value, ensure_ascii=False), and with separators=(",", ":") too: the same text,
# without making an encoder each call
_dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False).encode
_compact_json: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":")
).encode


def conversation_status(state: State) -> str:
    if state.phase == "cancelled":
        return "cancelled"
    if state.verdict is not None and state.phase == "verdict":
        return "finished"
    return "active"


MAX_GROUP = 32  # bodies per group commit at most: a busy moment does not delay the first long


@dataclass
class _Group:
    """One open transaction shared by several bodies (see Storage.transaction)."""

    durable: bool  # committed with an fsync (synchronous=FULL)
    members: int = 0
    done: bool = False
    error: BaseException | None = None


MEMORY_CHATS = 1024  # chats whose last turn a Storage remembers (the least recent forgotten)
SHARED_CHOICES = 4096  # buttons the remembered states share (then all forgotten)


@dataclass(slots=True)
class Remembered:
    """What a chat's last committed turn left (Storage.recall): its conversation (the chat's
    latest), that conversation's status, its state as the step returned it (never mutated:
    the step works on copies), its last event seq, the chat's marks (table `chats`, the JSON
    text as stored, '{}' without a row), the ids of its outbox rows still to send, in order
    (None: not known, read the outbox), and whether the conversation has its user id."""

    conversation_id: int
    status: str
    state: State
    seq: int
    marks: str
    unsent: tuple[int, ...] | None = None
    user: bool = False


class Storage:
    """Conversations of every chat, in one SQLite file.

    Threading: ONE connection (opened with check_same_thread=False) shared by all threads and
    guarded by `self.lock` (an RLock); every public method holds it for its whole transaction.
    Other processes (admin tools) are serialised by SQLite's own lock and `busy_timeout`.
    Code that uses `self.conn` (or `self.db`) from several threads must hold `self.lock` too.
    `conn` is the plain sqlite3 connection (the bot's path: prepared statements, no schema
    look-ups); `db` wraps it in sqlite-utils for the admin readers, imported only when asked
    for (sqlite-utils imports numpy when installed: most of a command's start-up).
    """

    def __init__(self, path: str | Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or _utc_now
        self.lock = threading.RLock()
        self._turns = threading.Condition(self.lock)  # a group's members wait for its commit
        self._queue_lock = threading.Lock()
        self._queued = 0  # threads waiting to start a transaction
        self._group: _Group | None = None  # the open transaction
        self.commits = 0  # transactions committed (the bench reports bodies per commit)
        # The memory (see recall): ids of texts and names, each chat's last turn, the last
        # event id; when it may be wrong, forgotten together (_forget), never in part.
        self._ids: dict[tuple[int, str], int] = {}
        self._chats: dict[tuple[str, str], Remembered] = {}
        self._last_id: int | None = None
        self._version: int | None = None  # PRAGMA data_version when the memory was checked
        self._changes = -1  # conn.total_changes when the memory was last brought up to date
        self._choices: dict[tuple[str, str], Choice] = {}  # see _shared_buttons
        self._fields_sets: dict[frozenset[str], set[str]] = {}  # ditto
        self._last_now: tuple[str, int] = ("", 0)  # the latest `now()`, and its microseconds
        self._minute: tuple[int | None, str] = (None, "")  # now()'s latest minute, its text
        # commits made without their fsync (run_batch fsync=False), and how many of them the
        # latest sync_wal covered
        self.unsynced = self.synced = 0
        self._sync_lock = threading.Lock()
        self._dir_synced = False
        self._sync_error: OSError | None = None  # a failed fsync of the log: for good
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        self.conn = conn
        try:
            self._check(conn)
        except BaseException:
            conn.close()
            raise
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")  # per connection, outside any transaction
        conn.execute("PRAGMA recursive_triggers = ON")  # as sqlite-utils' Database sets it
        # Deleted rows are overwritten with zeros, not just unlinked: /delete leaves no text.
        conn.execute("PRAGMA secure_delete = ON")
        # persistent; readers (admin tools) never block the bot's writes
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = wal")
        # FULL, not NORMAL: in WAL mode NORMAL can lose the last commits on power failure. A
        # lost commit here means a reply the user already saw is missing from the state (and
        # its update id from `inputs`), so the next message would be understood against a stale
        # state. The bot writes a few rows per human message, so the extra fsync costs nothing.
        conn.execute("PRAGMA synchronous = FULL")
        with self.lock:
            fresh = schema_version(conn) == 0
            migrate(conn)
            if fresh:  # the migrations' dropped tables leave free pages: a new file starts compact
                conn.execute("VACUUM")

    def _check(self, conn: sqlite3.Connection) -> None:
        """Before anything is written (WAL switch, migrations): refuse a file that is not
        SQLite, is damaged (quick_check: every page readable and well formed, no index cross
        check, so it is fast) or was written by a newer version of this code."""
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            raise StorageError("damaged", path=self.path, problem=exc) from None
        if problems != ["ok"]:
            raise StorageError("damaged", path=self.path, problem=problems[0])
        if version > SCHEMA_VERSION:
            raise StorageError("newer", version=version, ours=SCHEMA_VERSION)

    @cached_property
    def db(self) -> Database:
        from sqlite_utils import Database

        return Database(self.conn)

    # --- the memory ---
    # Between turns the Storage remembers what it wrote: text and name ids (_ids), each chat's
    # last turn (_chats, see Remembered), the last event id (_last_id). All of it is forgotten
    # at once (_forget) when it may no longer be what the database holds:
    # - another connection has committed (PRAGMA data_version, checked after each batch's
    #   BEGIN: while the batch holds the write lock nobody else commits);
    # - a write of ours is undone (a body rolled back to its savepoint, a failed COMMIT);
    # - anything writes outside a turn: every `transaction()` starts by forgetting (deletions,
    #   start_new, refused inputs' notes, the console's commits), and as a net under all of
    #   that, any change on this connection that the memory was not told of
    #   (conn.total_changes differs from the count `remember` last saw) forgets it at the next
    #   `recall`.
    # A turn's body remembers only at its end (`remember`), after its last write; a body that
    # fails after that is undone and the memory forgotten with it.

    def _forget(self) -> None:
        self._ids.clear()
        self._chats.clear()
        self._last_id = None

    def _check_version(self) -> None:
        """Inside a write transaction: forget everything if another connection has committed
        since the last check."""
        version = self.conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:
            self._forget()
            self._version = version

    def recall(self, channel: str, chat_id: str) -> Remembered | None:
        """Inside a write transaction (run_batch's bodies): what the chat's last turn left, or
        None when it is not remembered (then read the database)."""
        if self.conn.total_changes != self._changes:  # written by someone the memory ignores
            self._forget()
            self._changes = self.conn.total_changes
        return self._chats.get((channel, chat_id))

    def remember(
        self, channel: str, chat_id: str, entry: Remembered | None, last_id: int | None = None
    ) -> None:
        """At the end of a body that called `recall`, after its last write, when everything it
        wrote since is known: `entry` is what the chat's rows now hold (None: forget the chat);
        `last_id`: the last event id written (None: no event written)."""
        key = (channel, chat_id)
        old = self._chats.pop(key, None)  # to the end: the least recently written goes first
        if entry is not None:
            if old is None or entry.state is not old.state:
                entry.state = self._shared_buttons(entry.state)
            self._chats[key] = entry
            if len(self._chats) > MEMORY_CHATS:
                del self._chats[next(iter(self._chats))]
        if last_id is not None:
            self._last_id = last_id
        self._changes = self.conn.total_changes

    def _shared_buttons(self, state: State) -> State:
        """`state` to remember: a copy whose buttons offered (two thirds of a state's memory)
        are instances shared by all the remembered states offering the same button, as is
        its set of fields set (pydantic's, a third of the rest) when it is the usual one.
        Nothing changes them: the step copies its input, and the copy is the memory's own."""
        pool, offered = self._choices, []
        for choice in state.offered:
            fields = choice.__dict__
            key = (fields["value"], fields["label"])
            shared = pool.get(key)
            if shared is None:
                if len(pool) >= SHARED_CHOICES:
                    pool.clear()
                shared = pool[key] = Choice(value=key[0], label=key[1])
            offered.append(shared)
        state = shallow_copy(state)
        state.__dict__["offered"] = offered
        names = frozenset(state.__pydantic_fields_set__)  # a few sets in use, shared
        shared_names = self._fields_sets.get(names)
        if shared_names is None and len(self._fields_sets) < SHARED_CHOICES:
            shared_names = self._fields_sets[names] = set(names)
        if shared_names is not None:
            object.__setattr__(state, "__pydantic_fields_set__", shared_names)
        return state

    def sync_wal(self) -> int:
        """fsync the write-ahead log (and, the first time, its directory): every transaction
        committed before the call is then as durable as a synchronous=FULL commit makes it
        (that fsyncs this same file). Any thread; it does not use the connection. Returns the
        count of commits without an fsync (`unsynced`) it covers. A failure raises what a
        failed COMMIT raises (sqlite3.OperationalError, disk I/O error)."""
        with self._sync_lock:  # one at a time: none may open the file after another's
            # failure and report success before that failure is recorded
            covered = self.unsynced
            if self._sync_error is not None:  # after a failed fsync a later one's success
                raise _fsync_failed(self._sync_error)  # proves nothing (the kernel may have
                # dropped the pages): until a restart nothing more is reported stored
            try:
                for path in [f"{self.path}-wal"] + [self.path.parent] * (not self._dir_synced):
                    fd = os.open(path, os.O_RDONLY)  # the log, and its directory entry once
                    try:  # (SQLite syncs a new log's directory once too)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as exc:
                self._sync_error = exc
                raise _fsync_failed(exc) from exc
            self._dir_synced = True
            self.synced = max(self.synced, covered)
        return covered

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """The connection under the lock, for reads that must see committed rows only: a
        synchronous group waiting for its commit (its transaction open on this connection) is
        committed first, and commits made without their fsync are synced, so nothing is read
        that a crash could still undo."""
        with self._turns:
            if self._group is not None:
                self._commit(self._group)
            if self.synced < self.unsynced:
                self.sync_wal()
            yield self.conn

    def ping(self) -> None:
        """Raises unless the database answers (the webhook's health endpoint)."""
        with self.lock:
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---

    def now(self, minus_days: int = 0) -> str:
        """The clock's time (less `minus_days`) as fixed-width ISO-8601 UTC: sorts as text."""
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("clock() must return an aware datetime")
        at = now.astimezone(UTC)
        if minus_days:
            at -= timedelta(days=minus_days)
        micros = (at - _EPOCH) // _MICRO
        minute, rest = divmod(micros, 60_000_000)
        known, prefix = self._minute
        if minute == known:  # the minute's text as made before (isoformat costs more)
            seconds, rest = divmod(rest, 1_000_000)
            iso = f"{prefix}{seconds:02d}.{rest:06d}+00:00"
        else:
            iso = at.isoformat(timespec="microseconds")
            self._minute = minute, iso[:17]  # "YYYY-MM-DDTHH:MM:"
        self._last_now = iso, micros
        return iso

    def _micros(self, iso: str) -> int | str:
        """`_micros(iso)`, without parsing back the latest `now()`."""
        last, micros = self._last_now
        return micros if iso == last else _micros(iso)

    @contextmanager
    def transaction(self, fsync: bool = True) -> Iterator[Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the thread lock; an exception in the body undoes the
        body's writes (a savepoint) and is raised.

        Group commit: while other threads wait to write, a body's transaction stays open for
        them and the last of the group commits (one fsync for all, synchronous=FULL); each
        durable body returns only after that commit, so whatever its caller does next (confirm
        the input, send) follows a durable commit, as when each committed alone. A failed
        commit is raised in every body of the group.

        `fsync=False`: a body whose loss on a power failure is harmless (the outbox's "sent"
        marks: at worst a reply goes out again) does not wait for the group's commit; a group of
        such bodies only commits without an fsync (synchronous=NORMAL). The next durable
        commit's fsync covers it too: the WAL is one file, written in order."""
        with self._queue_lock:
            self._queued += 1
        with self._turns:
            with self._queue_lock:
                self._queued -= 1
            self._forget()  # a write outside run_batch's turns: see "the memory"
            group = self._group
            if group is not None and fsync and not group.durable:
                self._commit(group)  # lazy bodies only: committed without an fsync
                group = None
            if group is None:
                if not fsync:  # set outside a transaction (SQLite refuses it inside); FULL is
                    self.conn.execute("PRAGMA synchronous = NORMAL")  # the setting otherwise
                self.conn.execute("BEGIN IMMEDIATE")
                group = self._group = _Group(durable=fsync)
            self.conn.execute("SAVEPOINT body")
            try:
                yield self.conn
                self.conn.execute("RELEASE body")
            except BaseException:
                self._undo_body(group)
                self._end(group, fsync)
                raise
            self._end(group, fsync)
            if group.error is not None:
                raise group.error

    def run_batch(
        self,
        bodies: list[tuple[Callable[[Connection], Any], bool]],
        wait: bool = True,
        fsync: bool = True,
    ) -> list[Any]:
        """Run several bodies `(body, durable)` in ONE transaction and commit once: with an
        fsync when any body is durable. A body that raises has its writes undone and the others
        stand: then all are undone and run again, each in its own savepoint (so a body may run
        twice: it must do nothing outside the database that it would not repeat). Returns, per
        body, its result or the exception it raised; a failed BEGIN or COMMIT is every body's
        result. See bot/writer.py.

        `wait=False` (the event loop's writer): if a thread holds the lock, or another process
        the database's write lock, raise `Busy` at once, having run nothing, rather than wait.
        `fsync=False`: commit without the fsync; the durable bodies are durable only once
        `sync_wal()` has covered `unsynced` (the writer runs it in a thread meanwhile)."""
        wanted = any(d for _, d in bodies)
        if not self.lock.acquire(blocking=wait):
            raise Busy
        try:
            if self._group is not None:  # a synchronous group waits for its commit: do it
                self._commit(self._group)
            return self._run_batch(bodies, wanted and fsync, wait, deferred=wanted and not fsync)
        finally:
            self._turns.notify_all()
            self.lock.release()

    def _run_batch(
        self, bodies: list, durable: bool, wait: bool, deferred: bool = False
    ) -> list[Any]:
        conn = self.conn
        try:
            if not durable:  # FULL otherwise, as the connection is outside a lazy batch
                conn.execute("PRAGMA synchronous = NORMAL")
            if not wait:
                conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            finally:
                if not wait:
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.OperationalError as exc:
            if not wait and "locked" in str(exc):
                raise Busy from exc
            return [exc] * len(bodies)
        except sqlite3.Error as exc:
            return [exc] * len(bodies)
        results: list[Any] = []
        try:
            self._check_version()
            conn.execute("SAVEPOINT batch")
            try:  # while no body fails (the usual case), no savepoint each
                results = [body(conn) for body, _ in bodies]
            except Exception:  # all undone, then each again in its own savepoint
                self._forget()  # what they wrote is undone: what they remembered may be gone
                conn.execute("ROLLBACK TO batch")
                results = [self._in_savepoint(body) for body, _ in bodies]
            conn.execute("RELEASE batch")
            conn.commit()
            self.commits += 1
            if deferred:
                self.unsynced += 1
        except sqlite3.Error as exc:  # the transaction is gone, or its COMMIT failed: all fail
            self._forget()
            conn.rollback()
            self._io_failed(exc)
            results = [exc] * len(bodies)
        except BaseException:  # not a body's failure (interrupted): nothing stays half done
            self._forget()
            conn.rollback()
            raise
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous = FULL")
        return results

    def _io_failed(self, exc: BaseException) -> None:
        """A COMMIT's I/O error (its fsync, SQLITE_IOERR) while commits wait for theirs: their
        pages may have been dropped, and a later fsync would report success: for good."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF == SQLITE_IOERR:
            with self._sync_lock:
                if self.synced < self.unsynced and self._sync_error is None:
                    self._sync_error = OSError(5, str(exc))

    def _in_savepoint(self, body: Callable[[Connection], Any]) -> Any:
        """`body(conn)`, or the exception it raised, its writes undone."""
        self.conn.execute("SAVEPOINT body")
        try:
            result = body(self.conn)
        except Exception as exc:
            result = exc
            self._forget()  # what it wrote is undone: what it remembered may be gone
            self.conn.execute("ROLLBACK TO body")
        self.conn.execute("RELEASE body")
        return result

    def _undo_body(self, group: _Group) -> None:
        self._forget()
        try:
            self.conn.execute("ROLLBACK TO body")
            self.conn.execute("RELEASE body")
        except sqlite3.Error as exc:  # the transaction is gone: the group fails with it
            group.error = exc

    def _end(self, group: _Group, durable: bool) -> None:
        """Wait for the group's commit (others will join it), or commit it (holding the lock)."""
        group.members += 1
        if group.error is None and self._queued and group.members < MAX_GROUP:
            while durable and not group.done:
                self._turns.wait()  # lets the next body in
            return
        if not group.done:
            self._commit(group)

    def _commit(self, group: _Group) -> None:
        try:
            if group.error is not None:
                raise group.error
            self.conn.commit()
            self.commits += 1
        except BaseException as exc:
            self._forget()
            self.conn.rollback()
            group.error = group.error or exc
            self._io_failed(exc)
        else:  # durable: so must be what it read (a duplicate's input) if committed unsynced
            if group.durable and self.synced < self.unsynced:
                try:
                    self.sync_wal()
                except sqlite3.Error as exc:
                    group.error = exc
        finally:
            self._group, group.done = None, True
            if not group.durable:  # FULL again: the connection's setting outside a lazy group
                self.conn.execute("PRAGMA synchronous = FULL")
            self._turns.notify_all()

    def _latest(self, channel: str, chat_id: str, active_only: bool) -> dict | None:
        """The chat's latest conversation unless it was abandoned ('active' or 'cancelled'
        only, with `active_only`). A cancelled one keeps its answers: the next input continues
        it (the dialog offers to go on, see the summary or start over)."""
        where = " AND status IN ('active', 'cancelled')" if active_only else ""
        row = self.conn.execute(
            f"SELECT c.id, c.status, {STATE_SQL} FROM conversations c {STATE_JOINS}"
            f" WHERE c.channel = ? AND c.chat_id = ?{where} ORDER BY c.id DESC LIMIT 1",
            [channel, chat_id],
        ).fetchone()
        if row is None or row[1] == "abandoned":
            return None
        return {"id": row[0], "state": _state(*row[2:])}

    def _create(
        self, channel: str, chat_id: str, user_id: str | None, state: State, test: bool = False
    ) -> tuple[int, State]:
        """A new conversation with its reference number (also put in its state, where the
        dialog reads it)."""
        now = self.now()
        state = state.model_copy(update={"reference": _issue_reference(self.conn, now)})
        row_id = self.conn.execute(
            "INSERT INTO conversations (reference, is_test, channel, chat_id, user_id, lang,"
            " started_at, updated_at, status, phase, awaiting, state_json)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
            [state.reference, int(test), channel, chat_id, user_id, state.lang, now, now,
             state.phase, state.awaiting, _state_row(self.conn, state.model_dump(mode="json"),
             {k: getattr(state, k) for k in STATE_COLUMNS})[0]],
        ).lastrowid  # fmt: skip
        return row_id, state

    def replies(self, conversation_id: int, first_seq: int, last_seq: int) -> list[Reply]:
        """The 'out' events between two seqs of a conversation, as the replies they were."""
        rows = self.conn.execute(
            "SELECT reply_key, raw_text, choices_json, verdict_json FROM events"
            " WHERE conversation_id = ? AND seq BETWEEN ? AND ? AND direction = 'out'"
            " ORDER BY seq",
            [conversation_id, first_seq, last_seq],
        )
        return [
            Reply(
                key=key,
                text=text,
                choices=[Choice(**c) for c in json.loads(choices or "[]")],
                verdict=json.loads(verdict) if verdict else None,
            )
            for key, text, choices, verdict in rows
        ]

    # --- the write path (inside `transaction()`) ---

    def load(self, channel: str, chat_id: str, user_id: str | None, lang: str) -> tuple[int, State]:
        """The conversation an input steps: the chat's current one, created if it has none."""
        row = self._latest(channel, chat_id, active_only=False)
        if row is not None:
            return row["id"], row["state"]
        return self._create(channel, chat_id, user_id, State(lang=lang))

    def note_reply(
        self, conversation_id: int, input_uid: str | None, reply: Reply, now: str
    ) -> tuple[int, int]:
        """Append one 'out' event outside a dialog turn (an adapter's own notice that must not
        be lost, so it goes through the outbox); returns its seq and id. The state is left
        alone."""
        seq, row_id = self._last(conversation_id)
        text, key = _text_ids(self.conn, {reply.text}), _name_ids(self.conn, {reply.key})
        self.conn.execute(
            _INSERT_OUT,
            (row_id + 1, conversation_id, seq + 1, self._micros(now), input_uid, None,
             key[reply.key], text[reply.text], 0, None, None),
        )  # fmt: skip
        self._forget()  # a write outside a turn (see "the memory")
        return seq + 1, row_id + 1

    def _last(self, conversation_id: int) -> tuple[int, int]:
        """The conversation's last event seq, and the last event id (of any conversation)."""
        return self.conn.execute(
            "SELECT max(coalesce((SELECT max(seq) FROM in_events WHERE conversation_id = ?1), 0),"
            " coalesce((SELECT max(seq) FROM out_events WHERE conversation_id = ?1), 0)),"
            " max(coalesce((SELECT max(id) FROM in_events), 0),"
            " coalesce((SELECT max(id) FROM out_events), 0))",
            [conversation_id],
        ).fetchone()

    def record(
        self,
        conversation_id: int,
        user_id: str | None,
        input_uid: str | None,
        user_input: UserInput,
        new_state: State,
        replies: list[Reply],
        now: str,
        known: Remembered | None = None,
    ) -> tuple[int, int, int]:
        """Append the 'in' event and one 'out' event per reply, and save the new state, at
        `now`. Returns the seqs of the first and last 'out' events (first > last: none) and
        the first one's event id. The replies' texts, choices and verdicts go to `texts` and
        the code words to `names` (one look-up of each per turn, of those not remembered);
        the 'out' rows take the 'in' row's time and input id. `known`: the conversation's
        chat as `recall` gave it in this body (its last seq, and the last event id, then
        come from the memory; the row's language, status and verdict, when none of them
        changes, are not written again)."""
        cid, last, db = conversation_id, new_state.last, self.conn
        if known is not None and known.conversation_id == cid and self._last_id is not None:
            seq, row_id = known.seq, self._last_id
        else:
            seq, row_id = self._last(cid)
        columns = {k: getattr(new_state, k) for k in STATE_COLUMNS}
        verdict = new_state.verdict or {}
        shaped = [
            (
                *_templated(r.text, new_state.reference),
                _choices_json(tuple((c.value, c.label) for c in r.choices)) if r.choices else None,
                None if r.verdict is None else _dumps(r.verdict),
            )
            for r in replies
        ]
        state = new_state.model_dump(mode="json")
        value = state["last"]["value"]  # as pydantic serialises it in state
        refs = state_verdict, offered = _state_refs(state)
        texts = {x for text, _, choices, v in shaped for x in (text, choices, v)}
        texts |= {state_verdict, offered}
        names = {last.question, last.outcome, last.command, new_state.awaiting}
        names |= {r.key for r in replies}
        tid, nid = _intern(db, texts, names, self._ids)
        db.execute(
            _INSERT_IN,
            (row_id + 1, cid, seq + 1, self._micros(now), nid.get(last.question),
             nid.get(last.outcome), user_input.raw, None if last.value is None else _dumps(value),
             nid.get(last.command), input_uid),
        )  # fmt: skip
        question, keys = nid.get(new_state.awaiting), [nid[r.key] for r in replies]
        db.executemany(
            _INSERT_OUT,
            [
                (row_id + 2 + i, cid, seq + 2 + i, None, None, question, key, tid[text], ref,
                 tid.get(choices), tid.get(v))
                for i, (key, (text, ref, choices, v)) in enumerate(zip(keys, shaped, strict=True))
            ],
        )  # fmt: skip
        has_user = known is not None and known.conversation_id == cid and known.user
        if user_id is not None and not has_user:  # apart: its index is rewritten only here, once
            db.execute(
                "UPDATE conversations SET user_id = ? WHERE id = ? AND user_id IS NULL",
                [user_id, cid],
            )
        status = conversation_status(new_state)
        state_json, verdict_id, offered_id = _state_row(
            db, state, columns, last_logged=True, known=tid, refs=refs
        )
        prior = known if known is not None and known.conversation_id == cid else None
        if (  # the row's language, status and verdict (none) stay: not rewritten
            prior is not None
            and new_state.verdict is None
            and prior.state.verdict is None
            and new_state.lang == prior.state.lang
            and status == prior.status
        ):
            db.execute(
                "UPDATE conversations SET updated_at = ?, phase = ?, awaiting = ?,"
                " state_json = ?, offered_id = ? WHERE id = ?",
                [now, new_state.phase, new_state.awaiting, state_json, offered_id, cid],
            )
        else:
            db.execute(
                "UPDATE conversations SET lang = ?,"
                " updated_at = ?, status = ?, phase = ?, awaiting = ?, verdict_status = ?,"
                " ruleset = ?, state_json = ?, verdict_id = ?, offered_id = ? WHERE id = ?",
                [new_state.lang, now, status, new_state.phase, new_state.awaiting,
                 verdict.get("status"), verdict.get("ruleset"), state_json, verdict_id,
                 offered_id, cid],
            )  # fmt: skip
        return seq + 2, seq + 1 + len(replies), row_id + 2

    def start_new(
        self,
        channel: str,
        chat_id: str | int,
        user_id: str | int | None,
        lang: str = "ja",
        test: bool = False,
    ) -> int:
        """Mark the chat's active conversation 'abandoned' (a finished one stays as is) and open
        a fresh one; returns its id. For a new console conversation and Telegram "start over".
        `test`: a conversation run by a program (scenario, console --jsonl), not by an owner."""
        chat_id = str(chat_id)
        with self.transaction() as db:
            db.execute(
                "UPDATE conversations SET status = 'abandoned', updated_at = ?"
                " WHERE channel = ? AND chat_id = ? AND status = 'active'",
                [self.now(), channel, chat_id],
            )
            user_id = None if user_id is None else str(user_id)
            return self._create(channel, chat_id, user_id, State(lang=lang), test)[0]

    # --- reads ---

    def current(self, channel: str, chat_id: str | int) -> tuple[int, State] | None:
        """The chat's latest conversation unless abandoned (what `handle` steps)."""
        with self.lock:
            row = self._latest(channel, str(chat_id), active_only=False)
        return None if row is None else (row["id"], row["state"])

    def last_unfinished(self, channel: str, chat_id: str | int) -> tuple[int, State] | None:
        """The chat's latest 'active' or 'cancelled' conversation, if any."""
        with self.lock:
            row = self._latest(channel, str(chat_id), active_only=True)
        return None if row is None else (row["id"], row["state"])

    def find(self, reference: str | None = None, channel: str = "", chat_prefix: str = ""):
        """The conversation (id, channel, chat_id, status) with this reference number, or
        without one the latest 'active' one of `channel` whose chat id starts `chat_prefix`."""
        if reference is not None:
            where, params = "reference = ?", [reference]
        else:
            where = "channel = ? AND status = 'active' AND substr(chat_id, 1, length(?)) = ?"
            params = [channel, chat_prefix, chat_prefix]
        sql = f"SELECT id, channel, chat_id, status FROM conversations WHERE {where}"
        with self.lock:
            row = self.conn.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return (
            None
            if row is None
            else dict(zip(("id", "channel", "chat_id", "status"), row, strict=True))
        )

    # --- deletion ---

    def _delete_conversations(self, where: str, params: list[Any]) -> dict[str, int]:
        """Delete the conversations, their events and inputs (their outbox rows and marks go
        by cascade), then the shared texts that no other conversation uses."""
        ids = f"SELECT id FROM conversations WHERE {where}"
        chats = f"SELECT channel, chat_id FROM conversations WHERE {where}"
        with self.transaction() as db:
            used = db.execute(
                f"SELECT json_group_array(DISTINCT x) FROM (SELECT text AS x FROM out_events"
                f" WHERE conversation_id IN ({ids}) UNION ALL SELECT choices FROM out_events"
                f" WHERE conversation_id IN ({ids}) UNION ALL SELECT verdict FROM out_events"
                f" WHERE conversation_id IN ({ids}) UNION ALL SELECT verdict_id"
                f" FROM conversations WHERE {where} UNION ALL SELECT offered_id"
                f" FROM conversations WHERE {where}) WHERE x IS NOT NULL",
                params * 5,
            ).fetchone()[0]
            counts = {
                "events": sum(
                    db.execute(f"DELETE FROM {t} WHERE conversation_id IN ({ids})", params).rowcount
                    for t in ("in_events", "out_events")
                ),
                "inputs": db.execute(  # the key's prefix finds them; the id picks them
                    f"DELETE FROM inputs WHERE (channel, chat_id) IN ({chats})"
                    f" AND conversation_id IN ({ids})",
                    params * 2,
                ).rowcount,
                "conversations": db.execute(
                    f"DELETE FROM conversations WHERE {where}", params
                ).rowcount,
            }
            self._forget()
            db.execute(
                "DELETE FROM texts WHERE id IN (SELECT value FROM json_each(?)) AND id NOT IN"
                " (SELECT text FROM out_events UNION ALL SELECT choices"
                " FROM out_events WHERE choices IS NOT NULL UNION ALL SELECT verdict FROM"
                " out_events WHERE verdict IS NOT NULL UNION ALL SELECT verdict_id FROM"
                " conversations WHERE verdict_id IS NOT NULL UNION ALL SELECT offered_id FROM"
                " conversations WHERE offered_id IS NOT NULL)",
                [used],
            )
        with self.lock:  # the WAL still holds the pages as they were: move them home, empty it
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def delete_user(self, user_id: str | int) -> dict[str, int]:
        """Erase every conversation of `user_id` (all channels) with its events and inputs."""
        return self._delete_conversations("user_id = ?", [str(user_id)])

    def purge(self, older_than_days: int) -> dict[str, int]:
        """Erase conversations not updated for `older_than_days` days, whatever their status."""
        if older_than_days < 0:
            raise ValueError("older_than_days must be >= 0")
        cutoff = self.now(minus_days=older_than_days)
        return self._delete_conversations("updated_at < ?", [cutoff])
