"""Opening the bot's database for admin tools: read-only, refusing files that are not ours."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from bot.storage import SCHEMA_VERSION, schema_version
from locales import t


class AdminError(Exception):
    """A one-line problem for the admin (exit status 1)."""


def open_read_only(path: Path, lang: str | None = None) -> Database:
    if not path.is_file():
        raise AdminError(t("admin.cli.no_db", lang, path=path))
    db = Database(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
    try:
        version = schema_version(db)
    except sqlite3.DatabaseError as exc:  # not SQLite, or its header damaged
        db.close()
        raise AdminError(t("robustness.storage.damaged", lang, path=path, problem=exc)) from None
    if version == 0:
        db.close()
        raise AdminError(t("admin.cli.not_bot_db", lang, path=path))
    if version > SCHEMA_VERSION:  # written by newer code: its meaning may have changed
        db.close()
        raise AdminError(t("robustness.storage.newer", lang, version=version, ours=SCHEMA_VERSION))
    return db
