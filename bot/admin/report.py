"""Read-only reports on stored conversations, for admins.

The SQL here is the single source for the CLI (`subsidy-bot admin`), the Telegram admin commands
and the Datasette canned queries (admin_web wraps it with `display_sql`). Every query takes the
same named filter parameters; an empty string means "no filter", as Datasette sends for a blank
form field. Days and times are Japan time: the admins are in Tochigi and Japan has no DST, so a
fixed offset is exact.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache

from sqlite_utils import Database

from bot.storage import normalize_reference
from dialogs.questions import questions
from locales import t
from rules import Answers, evaluate
from rules.clock import TOKYO

JST = TOKYO  # the bot's one clock (rules.clock)
SQL_JST = "'+9 hours'"  # SQLite has no zones; Japan keeps UTC+9 all year
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # for strftime in Python and in SQLite alike
OUTCOMES = ("eligible", "ineligible", "undetermined", "none")  # "none": no verdict (yet)
CHANNELS = ("telegram", "line", "console")
SQLITE_MAX_INT = 2**63 - 1  # no row id beyond it
CODES = {  # coded column values an admin reads as words (locale admin.<kind>.<code>)
    "channel": CHANNELS,
    "status": ("active", "finished", "cancelled", "abandoned"),
    "verdict": OUTCOMES,
    "direction": ("in", "out"),
    "outcome": ("answer", "confirm", "reask", "command", "help", "start", "ignored"),
}
KINDS = {
    "channel": "channel",
    "status": "status",
    "verdict_status": "verdict",
    "question": "question",
    "last_question": "question",
    "direction": "direction",
    "outcome": "outcome",
    "started_at": "time",
    "updated_at": "time",
    "at": "time",
}


@dataclass(frozen=True)
class Filters:
    since: str = ""  # YYYY-MM-DD, first day (Japan time) a conversation may have started
    until: str = ""  # YYYY-MM-DD, last day, inclusive
    channel: str = ""
    outcome: str = ""  # one of OUTCOMES
    limit: int | str = ""
    tests: str = ""  # anything but '': include test conversations (scenarios, console --jsonl)

    def params(self) -> dict:
        return asdict(self)


# --- SQL (named parameters: the filters above, plus :id for one conversation) ---------------

SELECTED = f"""WITH sel AS (
  SELECT * FROM (SELECT *, coalesce(verdict_status, 'none') AS outcome FROM conversations)
  WHERE (:since = '' OR date(started_at, {SQL_JST}) >= :since)
    AND (:until = '' OR date(started_at, {SQL_JST}) <= :until)
    AND (:channel = '' OR channel = :channel)
    AND (:outcome = '' OR outcome = :outcome)
    AND (:tests != '' OR NOT is_test))"""


def abandoned(days: int) -> str:
    """SQL: a conversation of `sel` that people gave up: no verdict, and cancelled, replaced by
    a new one, or idle for more than `days` days (ABANDON_AFTER_DAYS)."""
    return f"""(outcome = 'none' AND (status IN ('cancelled', 'abandoned')
    OR julianday(updated_at) < julianday('now') - {int(days)}))"""


def abandon_days() -> int:
    from bot.settings import load

    return load().abandon_after_days


# The question a conversation was last at: `awaiting` is cleared by a cancel, so read the log.
LAST_QUESTION = """(SELECT e.question FROM events e WHERE e.conversation_id = sel.id
   AND e.question IS NOT NULL ORDER BY e.seq DESC LIMIT 1)"""

CONVERSATIONS_SQL = f"""{SELECTED}
SELECT id, reference, channel, chat_id, user_id, lang, started_at, updated_at, status,
  verdict_status, ruleset, {LAST_QUESTION} AS last_question, is_test, answers_json
FROM sel ORDER BY id DESC LIMIT coalesce(nullif(:limit, ''), -1)"""

# One conversation by its reference number, as typed (the web view's search form).
# Spaces, dashes, lower case and a missing "TC" are forgiven, as storage.normalize_reference.
BY_REFERENCE_SQL = """WITH k AS (
  SELECT replace(replace(upper(trim(:reference)), ' ', ''), '-', '') AS key)
SELECT id, reference, started_at, updated_at, channel, status, verdict_status,
  (SELECT e.question FROM events e WHERE e.conversation_id = c.id
   AND e.question IS NOT NULL ORDER BY e.seq DESC LIMIT 1) AS last_question
FROM conversations c, k WHERE replace(c.reference, '-', '') IN (k.key, 'TC' || k.key)"""

BY_CHANNEL_SQL = f"""{SELECTED}
SELECT channel, count(*) AS total,
  sum(outcome = 'eligible') AS eligible, sum(outcome = 'ineligible') AS ineligible,
  sum(outcome = 'undetermined') AS undetermined, sum(outcome = 'none') AS none
FROM sel GROUP BY channel ORDER BY total DESC, channel"""

BY_DAY_SQL = f"""{SELECTED}
SELECT date(started_at, {SQL_JST}) AS day, count(*) AS total,
  sum(outcome = 'eligible') AS eligible, sum(outcome = 'ineligible') AS ineligible,
  sum(outcome = 'undetermined') AS undetermined, sum(outcome = 'none') AS none
FROM sel GROUP BY day ORDER BY day"""

TRANSCRIPT_SQL = """SELECT seq, at, direction, question, outcome, raw_text, value_json, command,
  reply_key, verdict_json FROM events WHERE conversation_id = :id ORDER BY seq"""

EVENTS_SQL = f"""{SELECTED}
SELECT e.conversation_id, e.seq, e.at, e.direction, e.question, e.outcome, e.raw_text,
  e.value_json, e.command, e.reply_key, json_extract(e.verdict_json, '$.status') AS verdict
FROM events e JOIN sel ON sel.id = e.conversation_id
ORDER BY e.conversation_id, e.seq LIMIT coalesce(nullif(:limit, ''), -1)"""


@cache
def asking_order() -> tuple[str, ...]:
    """Every question, in the order the rules ask them when nothing is known yet."""
    return tuple(evaluate(Answers()).missing)


@cache
def questions_sql(days: int = 7) -> str:
    """Per question: reached (asked at least once), answered, stopped (the last question of a
    conversation abandoned there: see `abandoned`; one still in progress is not counted),
    re-asks, "I don't know" answers (help), skips (accepted ones: a question that cannot be
    skipped refuses, and that is not a skip) and typed answers read back before recording."""
    values = ", ".join(f"({i}, {sql_literal(q)})" for i, q in enumerate(asking_order()))
    return f"""{SELECTED},
q(ord, question) AS (VALUES {values}),
per AS (
  SELECT question,
    count(DISTINCT CASE WHEN direction = 'out' THEN conversation_id END) AS reached,
    count(DISTINCT CASE WHEN outcome = 'answer' THEN conversation_id END) AS answered,
    sum(outcome = 'reask') AS reasks,
    count(DISTINCT CASE WHEN outcome = 'reask' THEN conversation_id END) AS reask_conversations,
    sum(outcome = 'help') AS unknown,
    sum(command = 'skip' AND outcome = 'command') AS skipped,
    sum(outcome = 'confirm') AS read_backs
  FROM events WHERE conversation_id IN (SELECT id FROM sel) GROUP BY question),
stop AS (
  SELECT question, count(*) AS stopped
  FROM (SELECT {LAST_QUESTION} AS question FROM sel WHERE {abandoned(days)})
  GROUP BY question)
SELECT q.question, coalesce(reached, 0) AS reached, coalesce(answered, 0) AS answered,
  coalesce(stopped, 0) AS stopped, coalesce(reasks, 0) AS reasks,
  coalesce(reask_conversations, 0) AS reask_conversations, coalesce(unknown, 0) AS unknown,
  coalesce(skipped, 0) AS skipped, coalesce(read_backs, 0) AS read_backs
FROM q LEFT JOIN per USING (question) LEFT JOIN stop USING (question) ORDER BY q.ord"""


# --- labels: one mapping, used by Python formatting and by the SQL shown on the web -----------


def labels(kind: str, lang: str | None) -> dict[str, str]:
    if kind == "question":
        return {q: t(f"question.{q}.short", lang) for q in questions()}
    return {code: t(f"admin.{kind}.{code}", lang) for code in CODES[kind]}


def fmt_time(iso: str | None) -> str:
    return datetime.fromisoformat(iso).astimezone(JST).strftime(TIME_FORMAT) if iso else ""


def shown(column: str, value, lang: str | None) -> str:
    """A cell as an admin reads it: words for codes, Japan time for times."""
    kind = KINDS.get(column)
    if kind == "time":
        return fmt_time(value)
    if kind == "verdict":
        value = value or "none"
    if kind and value is not None:
        return labels(kind, lang).get(value, value)
    return "" if value is None else str(value)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def display_sql(sql: str, columns: list[str], lang: str | None, order: str = "") -> str:
    """`sql` wrapped for people (the Datasette view): headings in words, codes as labels,
    times in Japan time. Same labels as `shown`."""
    exprs = []
    for col in columns:
        kind, ident = KINDS.get(col), sql_ident(col)
        if kind == "time":
            expr = f"strftime('{TIME_FORMAT}', {ident}, {SQL_JST})"
        elif kind:
            subject = f"coalesce({ident}, 'none')" if kind == "verdict" else ident
            whens = " ".join(
                f"WHEN {sql_literal(c)} THEN {sql_literal(w)}"
                for c, w in labels(kind, lang).items()
            )
            expr = f"CASE {subject} {whens} ELSE {ident} END"
        else:
            expr = ident
        exprs.append(f"{expr} AS {sql_ident(t(f'admin.col.{col}', lang))}")
    return f"SELECT {', '.join(exprs)}\nFROM ({sql})\n{order}".rstrip()


# --- queries ------------------------------------------------------------------------------


def conversations(db: Database, filters: Filters = Filters()) -> list[dict]:
    return list(db.query(CONVERSATIONS_SQL, filters.params()))


def by_day(db: Database, filters: Filters = Filters()) -> list[dict]:
    return list(db.query(BY_DAY_SQL, filters.params()))


def per_question(db: Database, filters: Filters = Filters(), days: int | None = None) -> list[dict]:
    return list(db.query(questions_sql(abandon_days() if days is None else days), filters.params()))


def by_channel(db: Database, filters: Filters = Filters()) -> list[dict]:
    return list(db.query(BY_CHANNEL_SQL, filters.params()))


def no_verdict(db: Database, filters: Filters, days: int) -> dict:
    """Of the conversations without a verdict: how many were abandoned, how many go on."""
    sql = f"""{SELECTED} SELECT coalesce(sum({abandoned(days)}), 0) AS abandoned,
      coalesce(sum(outcome = 'none' AND NOT {abandoned(days)}), 0) AS in_progress FROM sel"""
    return next(db.query(sql, filters.params()))


def find_conversation(db: Database, key: str | int) -> int | None:
    """A conversation's id from its number or its reference number (as typed or read out)."""
    key = str(key).strip().lstrip("#")
    if key.isascii() and key.isdigit():
        return int(key) if int(key) <= SQLITE_MAX_INT else None  # no row has a bigger id
    reference = normalize_reference(key)
    row = next(db.query("SELECT id FROM conversations WHERE reference = ?", [reference]), None)
    return row and row["id"]


# --- plain text ---------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(columns: list[str], rows: list[dict], lang: str | None) -> str:
    """Aligned columns (wide characters count double); numbers to the right."""
    head = [t(f"admin.col.{c}", lang) for c in columns]
    body = [[shown(c, r[c], lang) for c in columns] for r in rows]
    widths = [max(_width(x) for x in col) for col in zip(head, *body, strict=False)]
    numeric = [bool(rows) and all(isinstance(r[c], int) for r in rows) for c in columns]

    def line(cells: list[str]) -> str:
        pad = [" " * (w - _width(x)) for x, w in zip(cells, widths, strict=True)]
        return "  ".join(
            p + x if num else x + p for x, p, num in zip(cells, pad, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(head), *map(line, body)])


LIST_COLUMNS = [
    "id",
    "reference",
    "started_at",
    "updated_at",
    "channel",
    "status",
    "verdict_status",
    "last_question",
]
DAY_COLUMNS = ["day", "total", "eligible", "ineligible", "undetermined", "none"]
CHANNEL_COLUMNS = ["channel", *DAY_COLUMNS[1:]]
FUNNEL_COLUMNS = ["question", "reached", "answered", "stopped"]
REASK_COLUMNS = ["question", "reasks", "reask_conversations", "unknown", "read_backs", "skipped"]


def list_report(db: Database, lang: str | None, filters: Filters = Filters()) -> str:
    rows = conversations(db, filters)
    if not rows:
        return t("admin.list.empty", lang)
    return "\n".join([t("admin.list.title", lang, n=len(rows)), table(LIST_COLUMNS, rows, lang)])


def stats_report(
    db: Database, lang: str | None, filters: Filters = Filters(), idle_days: int | None = None
) -> str:
    days = by_day(db, filters)
    if not days:
        return t("admin.list.empty", lang)
    idle_days = abandon_days() if idle_days is None else idle_days
    per_q = per_question(db, filters, idle_days)
    totals = {k: sum(d[k] for d in days) for k in DAY_COLUMNS[1:]}
    outcomes = [
        t("admin.stats.outcome_line", lang, label=labels("verdict", lang)[k], n=totals[k])
        for k in OUTCOMES
    ]
    left = no_verdict(db, filters, idle_days)
    outcomes.append(
        t(
            "takeaway.admin.no_verdict",
            lang,
            days=idle_days,
            abandoned=left["abandoned"],
            in_progress=left["in_progress"],
        )
    )
    reasked = [r for r in per_q if any(r[c] for c in REASK_COLUMNS[1:])]
    parts = [
        t("admin.stats.total", lang, n=totals["total"]),
        *outcomes,
        "",
        t("admin.stats.by_day", lang),
        table(DAY_COLUMNS, days, lang),
        "",
        t("takeaway.admin.by_channel", lang),
        table(CHANNEL_COLUMNS, by_channel(db, filters), lang),
        "",
        t("admin.stats.funnel", lang),
        table(FUNNEL_COLUMNS, per_q, lang),
        t("admin.stats.funnel_note", lang, days=idle_days),
        "",
        t("admin.stats.reasks", lang),
        table(REASK_COLUMNS, reasked, lang) if reasked else t("admin.stats.no_reasks", lang),
    ]
    return "\n".join(parts)


def _first_line(text: str, limit: int = 80) -> str:
    line = (text or "").strip().split("\n", 1)[0]
    more = len(line) > limit or "\n" in (text or "").strip()
    return line[:limit] + ("…" if more else "")


def _mark(e: dict, lang: str | None) -> str:
    """How the bot understood an input; for a bot message, the question it asks."""
    q = questions().get(e["question"] or "")
    params = {
        "question": labels("question", lang).get(e["question"], e["question"] or ""),
        "command": e["command"] or "",
        "value": "",
    }
    if e["outcome"] in ("answer", "confirm") and q is not None and e["value_json"] is not None:
        params["value"] = q.show(json.loads(e["value_json"]), lang)
    kind = (
        e["outcome"]
        if e["direction"] == "in"
        else ("asks" if (e["reply_key"] or "").startswith("question.") else None)
    )
    return t(f"admin.show.mark.{kind}", lang, **params) if kind else ""


def transcript_report(
    db: Database, conversation_id: int, lang: str | None, full: bool = False
) -> str | None:
    """The whole conversation: header, every event in order, then the verdict and reasons.
    Bot messages are cut to their first line unless `full`."""
    conv = next(
        db.query("SELECT * FROM conversations WHERE id = :id", {"id": conversation_id}), None
    )
    if conv is None:
        return None
    lines = [
        t(
            "admin.show.header",
            lang,
            id=conv["id"],
            channel=shown("channel", conv["channel"], lang),
            chat=conv["chat_id"],
            user=conv["user_id"] or "-",
        ),
        t(
            "admin.show.times",
            lang,
            started=fmt_time(conv["started_at"]),
            updated=fmt_time(conv["updated_at"]),
            status=shown("status", conv["status"], lang),
        ),
        t("takeaway.admin.reference", lang, reference=conv["reference"] or "-"),
        "",
    ]
    for e in db.query(TRANSCRIPT_SQL, {"id": conversation_id}):
        head = f"{fmt_time(e['at'])} {shown('direction', e['direction'], lang)}:"
        if e["direction"] == "out" and full:
            body = (e["raw_text"] or "").replace("\n", "\n    ")
            lines.append(f"{head} {_mark(e, lang)}".rstrip() + f"\n    {body}")
        else:
            text = e["raw_text"] if e["direction"] == "in" else _first_line(e["raw_text"])
            lines.append(f"{head} {text}  {_mark(e, lang)}".rstrip())
    # the state's verdict is stored once in `texts` (bot/storage.py, migration 7)
    verdict = next(db.query("SELECT body FROM texts WHERE id = ?", [conv["verdict_id"]]), None)
    lines += ["", *_verdict_lines(verdict and json.loads(verdict["body"]), lang)]
    return "\n".join(lines)


def _verdict_lines(verdict: dict | None, lang: str | None) -> list[str]:
    if not verdict:
        return [t("admin.show.no_verdict", lang)]
    lines = [
        t(
            "admin.show.verdict",
            lang,
            verdict=shown("verdict_status", verdict["status"], lang),
            ruleset=verdict["ruleset"],
        ),
        t("admin.show.reasons", lang),
    ]
    lines += [
        t(
            "admin.show.reason_line",
            lang,
            mark=t(f"admin.criterion.{r['status']}", lang),
            message=r["message"],
            clause=r["clause"],
        )
        for r in verdict["reasons"]
    ]
    if verdict.get("warnings"):
        lines += [t("admin.show.warnings", lang), *(f"  {w}" for w in verdict["warnings"])]
    if verdict.get("missing"):
        names = labels("question", lang)
        missing = t("admin.separator", lang).join(names.get(m, m) for m in verdict["missing"])
        lines.append(t("admin.show.missing", lang, questions=missing))
    return lines


# --- for the Telegram adapter (plain text; the adapter escapes it) ------------------------


def stats_text(storage, lang) -> str:
    with storage.lock:
        return stats_report(storage.db, lang)


def recent_text(storage, lang, limit=10) -> str:
    with storage.lock:
        return list_report(storage.db, lang, Filters(limit=limit))


def show_text(storage, key: str | int, lang) -> str | None:
    """The transcript of the conversation with this number or reference number."""
    with storage.lock:
        found = find_conversation(storage.db, key)
        return None if found is None else transcript_report(storage.db, found, lang)


def chat_report(storage, command: str, arg: str, lang) -> str | None:
    """The text for an admin's chat command (stats; recent [N]; show ID or reference number)
    on any channel. None: show without a usable number (the channel says how to use it). Only
    positive numbers in ASCII digits count (str.isdigit also takes ², ①, full-width digits)."""

    def number(text: str) -> int | None:
        text = text.strip().lstrip("#")
        return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None

    if command == "stats":
        return stats_text(storage, lang)
    if command == "recent":
        return recent_text(storage, lang, min(number(arg) or 10, 50))
    key = arg.strip().lstrip("#")
    if number(key) is None and normalize_reference(key) is None:
        return None
    return show_text(storage, key, lang) or t("admin.show.not_found", lang, id=key)
