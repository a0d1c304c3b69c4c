"""`subsidy-bot admin …`: read, export and count stored conversations; prune them.

Reading commands open the database read-only (the bot may be writing; an admin tool must never
change or migrate it). Only `purge` and `delete-user` write, through Storage. The reports are
in report.py, the web view in web.py (Datasette, imported only by `serve`).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path

from sqlite_utils import Database

from bot.admin import backup, report
from bot.admin.database import AdminError, open_read_only
from bot.storage import Storage
from dialogs.questions import questions
from locales import LANGS, has, t
from rules import Answers


def _date(text: str) -> str:
    return dt.date.fromisoformat(text).isoformat()


def configure(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, help="SQLite file (default: $SUBSIDY_DB)")
    common.add_argument("--lang", choices=LANGS, help="output language (default: $SUBSIDY_LANG)")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--since", type=_date, help="started on or after (YYYY-MM-DD)")
    filters.add_argument("--until", type=_date, help="started on or before (YYYY-MM-DD)")
    filters.add_argument("--outcome", choices=report.OUTCOMES)
    filters.add_argument("--channel", choices=report.CHANNELS)
    filters.add_argument(
        "--include-tests",
        action="store_true",
        help="count test conversations too (scenario runs, console --jsonl)",
    )

    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("list", parents=[common, filters], help="conversations, newest first")
    p.add_argument("--limit", type=int, default=50)
    p = sub.add_parser("show", parents=[common], help="one conversation's transcript")
    p.add_argument("id", metavar="ID|REF", help="conversation number or reference number")
    p.add_argument("--full", action="store_true", help="bot messages in full")
    p = sub.add_parser("export", parents=[common, filters], help="conversations as CSV or JSONL")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("-o", "--output", type=Path, help="file (default: stdout)")
    p.add_argument("--events", action="store_true", help="one row per event")
    p.add_argument(
        "--raw", action="store_true", help="codes and field names, for programs (not --lang)"
    )
    p.add_argument("--limit", type=int)
    p = sub.add_parser("stats", parents=[common, filters], help="outcomes, funnel, re-asks")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="also draw the charts")
    p = sub.add_parser("purge", parents=[common], help="delete conversations not updated lately")
    p.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    p = sub.add_parser("delete-user", parents=[common], help="delete a user's conversations")
    p.add_argument("user_id")
    p = sub.add_parser("serve", parents=[common], help="read-only web view (Datasette)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    sub.add_parser("hash-password", parents=[common], help="password hash for ADMIN_PASSWORD_HASH")
    p = sub.add_parser("backup", parents=[common], help="a copy, safe while the bot runs")
    p.add_argument("file", type=Path, help="the copy to write (must not exist)")


def main(args: argparse.Namespace) -> int:
    if args.db is None or args.lang is None:  # SUBSIDY_DB / SUBSIDY_LANG, or .env
        from bot.settings import load

        settings = load()
        args.db = args.db or settings.subsidy_db
        args.lang = args.lang or settings.subsidy_lang  # t() falls back from unknown ones
    try:
        return ACTIONS[args.action](args)
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return 1


def _filters(args, limit=None) -> report.Filters:
    """argparse's None (not given) is the SQL's '' (no filter)."""
    given = {k: getattr(args, k) for k in ("since", "until", "channel", "outcome")}
    return report.Filters(
        **{k: v or "" for k, v in given.items()},
        limit="" if limit is None else limit,
        tests="1" if args.include_tests else "",
    )


def _list(args) -> int:
    with open_read_only(args.db, args.lang) as db:
        print(report.list_report(db, args.lang, _filters(args, args.limit)))
    return 0


def _show(args) -> int:
    with open_read_only(args.db, args.lang) as db:
        found = report.find_conversation(db, args.id)
        text = found and report.transcript_report(db, found, args.lang, full=args.full)
    if text is None:
        raise AdminError(t("admin.show.not_found", args.lang, id=args.id))
    print(text)
    return 0


# --- export -------------------------------------------------------------------------------
CONVERSATION_FIELDS = [
    "id",
    "reference",
    "channel",
    "chat_id",
    "user_id",
    "lang",
    "started_at",
    "updated_at",
    "status",
    "verdict_status",
    "ruleset",
    "last_question",
    "is_test",
]
ANSWER_FIELDS = list(Answers.model_fields)
EVENT_FIELDS = [
    "conversation_id",
    "seq",
    "at",
    "direction",
    "question",
    "outcome",
    "raw_text",
    "value",
    "command",
    "reply_key",
    "verdict",
]


def _iso_jst(iso: str | None) -> str | None:
    """Japan time with its offset: unambiguous, and what the admins read."""
    return iso and dt.datetime.fromisoformat(iso).astimezone(report.JST).isoformat("T", "seconds")


def export_rows(db: Database, filters: report.Filters, events: bool) -> tuple[list, list[dict]]:
    """(columns, rows), oldest first; every answer field has its own column. Codes and field
    names as stored (`export --raw`); `in_words` turns them into an admin's words."""
    if events:
        rows = [
            r | {"at": _iso_jst(r["at"]), "value": json.loads(r["value_json"] or "null")}
            for r in db.query(report.EVENTS_SQL, filters.params())
        ]
        return EVENT_FIELDS, [{k: r[k] for k in EVENT_FIELDS} for r in rows]
    rows = []
    for r in reversed(report.conversations(db, filters)):
        answers = json.loads(r["answers_json"])
        row = {k: r[k] for k in CONVERSATION_FIELDS}
        row |= {"started_at": _iso_jst(r["started_at"]), "updated_at": _iso_jst(r["updated_at"])}
        rows.append(row | {f: answers.get(f) for f in ANSWER_FIELDS})
    return CONVERSATION_FIELDS + ANSWER_FIELDS, rows


def in_words(columns: list[str], rows: list[dict], lang: str | None) -> tuple[list, list[dict]]:
    """Headers and coded values in the admin's language (industry: manufacturing, arrears: none);
    numbers stay numbers, so a spreadsheet can still add them up."""
    qs = questions()

    def header(column: str) -> str:
        return t(f"question.{column}.short" if column in qs else f"admin.col.{column}", lang)

    def cell(column: str, value, row: dict):
        if value is None:
            return None
        if column in ("value", *qs):  # an answer: words for choices and yes/no
            q = qs.get(row.get("question") if column == "value" else column)
            return q.show(value, lang) if q and q.kind in ("choice", "yes_no") else value
        if column == "is_test":
            return t("takeaway.admin.test_yes" if value else "takeaway.admin.test_no", lang)
        if column in ("lang", "command") and has(f"takeaway.admin.{column}.{value}", lang):
            return t(f"takeaway.admin.{column}.{value}", lang)
        column = "verdict_status" if column == "verdict" else column  # the events' verdict
        if column in report.KINDS and report.KINDS[column] != "time":
            return report.shown(column, value, lang)
        return value

    heads = [header(c) for c in columns]
    return heads, [{h: cell(c, r[c], r) for h, c in zip(heads, columns, strict=True)} for r in rows]


def _export(args) -> int:
    with open_read_only(args.db, args.lang) as db:
        columns, rows = export_rows(db, _filters(args, args.limit), args.events)
    if not args.raw:
        columns, rows = in_words(columns, rows, args.lang)
    # The BOM makes Excel read the CSV as UTF-8; csv's own \r\n line ends suit it too.
    encoding = "utf-8-sig" if args.format == "csv" else "utf-8"
    sys.stdout.flush()  # we write to its buffer below
    out = (
        open(args.output, "w", encoding=encoding, newline="")
        if args.output
        else io.TextIOWrapper(sys.stdout.buffer, encoding=encoding, newline="", write_through=True)
    )
    try:
        if args.format == "csv":
            writer = csv.DictWriter(out, columns)
            writer.writeheader()
            writer.writerows(rows)
        else:
            out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    finally:
        out.flush()
        if args.output:
            out.close()
        else:
            out.detach()  # leave sys.stdout usable
    if args.output:
        print(t("admin.cli.exported", args.lang, n=len(rows), path=args.output), file=sys.stderr)
    return 0


# --- stats --------------------------------------------------------------------------------
def _stats(args) -> int:
    with open_read_only(args.db, args.lang) as db:
        filters = _filters(args)
        print(report.stats_report(db, args.lang, filters))
        if args.plot:
            plot(db, filters, args.plot, args.lang)
            print(t("admin.cli.plot_saved", args.lang, path=args.plot), file=sys.stderr)
    return 0


def plot(db: Database, filters: report.Filters, path: Path, lang: str) -> None:
    """The funnel (per question) and the outcomes per day, as one PNG."""
    try:
        import matplotlib
    except ImportError:
        raise AdminError(t("admin.cli.needs_extra", lang, what="matplotlib")) from None
    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    try:
        import matplotlib_fontja  # noqa: F401  (registers a Japanese font on import)
    except ImportError:
        lang = "en"  # without a Japanese font the labels would be empty boxes

    per_q, days = report.per_question(db, filters), report.by_day(db, filters)
    names = report.labels("question", lang)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 11), height_ratios=(3, 2))
    ys, h = range(len(per_q)), 0.27
    for i, key in enumerate(report.FUNNEL_COLUMNS[1:]):
        top.barh(
            [y + (i - 1) * h for y in ys],
            [r[key] for r in per_q],
            h,
            label=t(f"admin.col.{key}", lang),
        )
    top.set_yticks(list(ys), [names[r["question"]] for r in per_q])
    top.invert_yaxis()  # asking order from the top
    top.set_title(t("admin.plot.funnel", lang))
    top.set_xlabel(t("admin.plot.conversations", lang))
    top.xaxis.get_major_locator().set_params(integer=True)
    top.legend()
    x = [dt.date.fromisoformat(d["day"]) for d in days]  # a date axis keeps the gaps
    bottom_sum = [0] * len(days)
    for key in report.OUTCOMES:
        values = [d[key] for d in days]
        bottom.bar(x, values, bottom=bottom_sum, label=report.labels("verdict", lang)[key])
        bottom_sum = [a + b for a, b in zip(bottom_sum, values, strict=True)]
    bottom.set_title(t("admin.plot.outcomes", lang))
    bottom.set_ylabel(t("admin.plot.conversations", lang))
    if x:  # one tick per day, or fewer for long periods
        from matplotlib import dates

        bottom.xaxis.set_major_locator(dates.DayLocator(interval=max(1, (x[-1] - x[0]).days // 10)))
        bottom.xaxis.set_major_formatter(dates.DateFormatter("%Y-%m-%d"))
    bottom.tick_params(axis="x", labelrotation=45)
    bottom.yaxis.get_major_locator().set_params(integer=True)
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- deletion -----------------------------------------------------------------------------
def _storage(path: Path, lang: str | None) -> Storage:
    if not path.is_file():
        raise AdminError(t("admin.cli.no_db", lang, path=path))
    return Storage(path)


def _purge(args) -> int:
    if args.older_than < 0:
        raise AdminError(t("admin.cli.bad_days", args.lang))
    with _storage(args.db, args.lang) as storage:
        counts = storage.purge(args.older_than)
    print(t("admin.cli.purged", args.lang, days=args.older_than, **counts))
    return 0


def _delete_user(args) -> int:
    with _storage(args.db, args.lang) as storage:
        counts = storage.delete_user(args.user_id)
    print(t("admin.cli.deleted_user", args.lang, user=args.user_id, **counts))
    return 0


def _serve(args) -> int:
    from bot.admin import web as admin_web

    return admin_web.serve(args.db, args.host, args.port, args.lang)


def _hash_password(args) -> int:
    from bot.admin import web as admin_web

    return admin_web.hash_password_command(args.lang)


ACTIONS = {
    "list": _list,
    "show": _show,
    "export": _export,
    "stats": _stats,
    "purge": _purge,
    "delete-user": _delete_user,
    "serve": _serve,
    "hash-password": _hash_password,
    "backup": lambda args: backup.backup(args.db, args.file, args.lang),
}
