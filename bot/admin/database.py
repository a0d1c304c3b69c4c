"""Opening the bot's database for admin tools: read-only, refusing files that are not ours."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from bot.storage import schema_version
from locales import t


class AdminError(Exception):
    """A one-line problem for the admin (exit status 1)."""


def open_read_only(path: Path, lang: str | None = None) -> Database:
    if not path.is_file():
        raise AdminError(t("admin.cli.no_db", lang, path=path))
    db = Database(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
    if schema_version(db) == 0:
        db.close()
        raise AdminError(t("admin.cli.not_bot_db", lang, path=path))
    return db
