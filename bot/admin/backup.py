"""`subsidy-bot admin backup FILE`: a consistent copy of the database while the bot runs.

SQLite's online backup API copies page by page from a read-only connection; a write by the
bot between two steps restarts the copy, so the result is always one committed state. The copy
goes to FILE.partial first and is renamed when complete: FILE is never a half-written file."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from bot.admin.database import AdminError, open_read_only
from locales import t

PAGES_PER_STEP = 1024  # between steps the bot may write (it never waits long for us)


def backup(db_path: Path, target: Path, lang: str | None) -> int:
    if target.exists():
        raise AdminError(t("robustness.backup.exists", lang, path=target))
    partial = target.with_name(target.name + ".partial")
    with open_read_only(db_path, lang) as db:
        copy = sqlite3.connect(partial)
        try:
            db.conn.backup(copy, pages=PAGES_PER_STEP)
            check = copy.execute("PRAGMA quick_check").fetchone()[0]
            conversations = copy.execute("SELECT count(*) FROM conversations").fetchone()[0]
        finally:
            copy.close()
    if check != "ok":
        partial.unlink()
        raise AdminError(t("robustness.storage.damaged", lang, path=db_path, problem=check))
    os.replace(partial, target)
    print(t("robustness.backup.done", lang, path=target, conversations=conversations))
    return 0
