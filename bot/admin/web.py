"""`subsidy-bot admin serve`: the database in Datasette, read-only, behind a password.

Read-only by construction: Datasette opens a mutable database file with `?mode=ro` for every
read; it opens a writable connection only for canned queries marked "write" or for plugins that
write, and there are none (no "write" below; plugins other than the password plugin are
unregistered before start). Every page is denied unless the actor is ACTOR (allow blocks at
instance, database and SQL level), and only datasette-auth-passwords creates that actor, from
the hash in ADMIN_PASSWORD_HASH. Written for Datasette 0.64/0.65 (1.0 moves these settings from
metadata to datasette.yaml; pyproject pins < 1.0).
"""

from __future__ import annotations

import getpass
import html
import os
import sys
import tempfile
from pathlib import Path
from string import Template

from bot.admin import report
from bot.admin.database import AdminError
from bot.admin.guard import Guard
from locales import t

ACTOR = "admin"
ALLOW = {"id": ACTOR}
ALLOWED_PLUGINS = {"datasette_auth_passwords"}  # module names; Datasette's own always load
SETTINGS = {"default_allow_sql": False, "allow_download": False}
TRANSCRIPT_COLUMNS = ["seq", "at", "direction", "question", "outcome", "raw_text", "value_json"]
CONVERSATION_COLUMNS = [
    "id",
    "channel",
    "chat_id",
    "user_id",
    "lang",
    "started_at",
    "updated_at",
    "status",
    "phase",
    "awaiting",
    "verdict_status",
    "ruleset",
    "reference",
    "is_test",
    "state_json",
    "answers_json",
]
EVENT_COLUMNS = [
    "conversation_id",
    "seq",
    "at",
    "direction",
    "question",
    "outcome",
    "raw_text",
    "value_json",
    "command",
    "reply_key",
    "choices_json",
    "verdict_json",
    "input_uid",
]


def metadata(db_name: str, lang: str | None) -> dict:
    """Datasette metadata: Japanese titles, allow blocks, the password plugin, canned queries
    (the SQL of admin_report, wrapped for people by `display_sql`)."""

    def query(name: str, sql: str, columns: list[str], order: str = "") -> dict:
        return {
            "title": t(f"admin.web.queries.{name}.title", lang),
            "description": t(f"admin.web.queries.{name}.description", lang),
            "sql": report.display_sql(sql, columns, lang, order),
            "hide_sql": True,
        }

    def table(name: str, columns: list[str]) -> dict:
        return {
            "title": t(f"admin.web.tables.{name}.title", lang),
            "description": t(f"admin.web.tables.{name}.description", lang),
            "columns": {c: t(f"admin.col.{c}", lang) for c in columns},
        }

    questions = report.questions_sql(report.abandon_days())
    return {
        "title": t("admin.web.title", lang),
        "description": t("admin.web.description", lang),
        "allow": ALLOW,
        "allow_sql": ALLOW,
        "plugins": {
            "datasette-auth-passwords": {f"{ACTOR}_password_hash": {"$env": "ADMIN_PASSWORD_HASH"}}
        },
        "databases": {
            db_name: {
                "title": t("admin.web.database", lang),
                "allow": ALLOW,
                "allow_sql": ALLOW,
                "tables": {
                    "conversations": table("conversations", CONVERSATION_COLUMNS),
                    "events": table("events", EVENT_COLUMNS),
                    # bookkeeping of the adapters, not conversations
                    "inputs": {"hidden": True},
                    "outbox": {"hidden": True},
                    "chats": {"hidden": True},
                    "reference_numbers": {"hidden": True},  # issued numbers, never reused
                    # the event log as stored: read through the view `events`
                    "in_events": {"hidden": True},
                    "out_events": {"hidden": True},
                    "texts": {"hidden": True},
                    "names": {"hidden": True},
                },
                "queries": {
                    "recent": query(
                        "recent",
                        report.CONVERSATIONS_SQL,
                        report.LIST_COLUMNS,
                        'ORDER BY "id" DESC',
                    ),
                    "transcript": query(
                        "transcript", report.TRANSCRIPT_SQL, TRANSCRIPT_COLUMNS, 'ORDER BY "seq"'
                    ),
                    "outcomes_by_day": query(
                        "outcomes_by_day", report.BY_DAY_SQL, report.DAY_COLUMNS, 'ORDER BY "day"'
                    ),
                    "funnel": query("funnel", questions, report.FUNNEL_COLUMNS),
                    "reasks": query("reasks", questions, report.REASK_COLUMNS),
                    "by_reference": query(
                        "by_reference", report.BY_REFERENCE_SQL, report.LIST_COLUMNS
                    ),
                    "outcomes_by_channel": query(
                        "outcomes_by_channel", report.BY_CHANNEL_SQL, report.CHANNEL_COLUMNS
                    ),
                },
            }
        },
    }


LOGIN_TEMPLATE = """{% extends "base.html" %}
{% block title %}$title{% endblock %}
{% block content %}
<h1>$title</h1>
<style>form.core input[type=password] { width: 80%; max-width: 400px; padding: 9px 4px;
  font-size: 1em; border: 1px solid #ccc; border-radius: 3px; }</style>
{% if error %}<p class="message-error">$error</p>{% endif %}
<form class="core" action="{{ urls.path("/-/login") }}" method="post">
  <p><label for="id_username">$username</label>
     <input id="id_username" type="text" name="username" value="$user"></p>
  <p><label for="id_password">$password</label>
     <input id="id_password" type="password" name="password"></p>
  <p>$hint</p>
  <input type="hidden" name="csrftoken" value="{{ csrftoken() }}">
  <p><input type="submit" value="$submit"></p>
</form>
{% endblock %}
"""


def write_templates(directory: Path, lang: str | None) -> None:
    """The password plugin's login page, with our words (same form fields). Its only error,
    once an account is configured, is a wrong user name or password."""
    words = {
        k: html.escape(t(f"admin.web.login.{k}", lang, user=ACTOR))
        for k in ("title", "username", "password", "submit", "hint", "error")
    }
    page = Template(LOGIN_TEMPLATE).substitute(words, user=ACTOR)
    (directory / "password_login.html").write_text(page, encoding="utf-8")


def _only_allowed_plugins(lang: str | None) -> None:
    from datasette.plugins import DEFAULT_PLUGINS, pm

    extra = [
        (name, p)
        for name, p in pm.list_name_plugin()
        if name not in DEFAULT_PLUGINS and getattr(p, "__name__", name) not in ALLOWED_PLUGINS
    ]
    for _, plugin in extra:
        pm.unregister(plugin)
    if extra:
        names = ", ".join(name for name, _ in extra)
        print(t("admin.cli.plugins_disabled", lang, names=names), file=sys.stderr)


def build(db_path: Path, lang: str | None, template_dir: Path):
    """A configured Datasette instance (not yet serving)."""
    try:
        from datasette.app import Datasette
    except ImportError:
        raise AdminError(t("admin.cli.needs_extra", lang, what="Datasette")) from None
    if os.environ.get("ADMIN_PASSWORD_HASH", "").count("$") != 3:
        raise AdminError(t("admin.cli.no_password_hash", lang))
    if not db_path.is_file():
        raise AdminError(t("admin.cli.no_db", lang, path=db_path))
    _only_allowed_plugins(lang)
    write_templates(template_dir, lang)
    return Datasette(
        [str(db_path)],
        metadata=metadata(db_path.stem, lang),
        settings=SETTINGS,
        template_dir=str(template_dir),
    )


def serve(db_path: Path, host: str, port: int, lang: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="subsidy-admin-") as tmp:
        ds = build(db_path, lang, Path(tmp))
        import uvicorn

        print(t("admin.cli.serving", lang, host=host, port=port, user=ACTOR), flush=True)
        app = Guard(ds.app(), lang)
        uvicorn.run(app, host=host, port=port, lifespan="on", log_level="warning")
    return 0


def hash_password_command(lang: str | None) -> int:
    """Read a password (prompted twice on a terminal, one line on a pipe); print its hash."""
    try:
        from datasette_auth_passwords.utils import hash_password
    except ImportError:
        raise AdminError(
            t("admin.cli.needs_extra", lang, what="datasette-auth-passwords")
        ) from None
    if sys.stdin.isatty():
        password = getpass.getpass(t("admin.cli.password", lang))
        if password != getpass.getpass(t("admin.cli.password_again", lang)):
            raise AdminError(t("admin.cli.password_mismatch", lang))
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise AdminError(t("admin.cli.password_empty", lang))
    print(hash_password(password))
    return 0
