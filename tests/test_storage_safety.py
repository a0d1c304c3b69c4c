"""The database file under failure and for privacy (issue 13, items 11, 12, 14, backup): a file
the bot must not use is refused before anything is written, deleted text leaves the file, a
backup is a consistent copy while the bot writes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_storage import Named

from bot.delivery import Delivery, Inbound
from bot.storage import SCHEMA_VERSION, Storage, StorageError
from dialogs.engine import step
from dialogs.io import UserInput
from locales import t

ROOT = Path(__file__).resolve().parent.parent
MARKER = "秘密のテキスト-7c1e"  # a user's words that /delete must take out of the file


def say(storage: Storage, chat: int, text: str, uid: str | None = None):
    delivery = Delivery(storage, Named("telegram"), step)
    return delivery.commit(Inbound(str(chat), str(chat), uid, None, UserInput(text=text)))


def journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "SUBSIDY_DB": str(db), "SUBSIDY_LANG": "en"}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=db.parent,
        env=env | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        input="",
        timeout=60,
    )


def newer(tmp_path: Path) -> Path:
    path = tmp_path / "newer.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return path


def damaged(tmp_path: Path) -> Path:
    """A bot database with one table page overwritten by garbage (as a failing disk would)."""
    path = tmp_path / "damaged.db"
    with Storage(path) as storage:
        for chat in range(40):
            say(storage, chat, "/start")
            say(storage, chat, "1")
        storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        storage.db.execute("PRAGMA journal_mode = DELETE")
        page = storage.db.execute("PRAGMA page_size").fetchone()[0]
        root = storage.db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'in_events'"
        ).fetchone()[0]
    with path.open("r+b") as f:
        f.seek((root - 1) * page)  # the event log's root page: its header and cell pointers
        f.write(b"\xa5" * 64)
    return path


def test_a_newer_schema_is_refused_before_the_file_is_switched_to_wal(tmp_path):
    path = newer(tmp_path)
    with pytest.raises(StorageError) as caught:
        Storage(path)
    assert caught.value.text("en") == t(
        "robustness.storage.newer", "en", version=SCHEMA_VERSION + 1, ours=SCHEMA_VERSION
    )
    assert journal_mode(path) == "delete"  # untouched


def test_a_damaged_file_is_refused_at_start(tmp_path):
    with pytest.raises(StorageError) as caught:
        Storage(damaged(tmp_path))
    assert caught.value.key == "damaged"


def test_a_file_that_is_not_sqlite_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database at all " * 200)
    with pytest.raises(StorageError) as caught:
        Storage(path)
    assert caught.value.key == "damaged"
    assert path.read_bytes() == b"this is not a database at all " * 200


def not_sqlite(tmp_path: Path) -> Path:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database at all " * 200)
    return path


@pytest.mark.parametrize("problem", [newer, damaged, not_sqlite])
@pytest.mark.parametrize(
    "command",
    [
        ("console", "--jsonl"),
        ("admin", "purge", "--older-than", "30"),
        ("admin", "list"),
        ("admin", "backup", "copy.db"),
        ("run",),
    ],
)
def test_every_face_says_it_in_one_line_without_a_traceback(tmp_path, problem, command):
    path = problem(tmp_path)
    before = path.read_bytes()
    env_token = ("TELEGRAM_BOT_TOKEN=123456:" + "A" * 35,) if command == ("run",) else ()
    result = cli(*command, db=path) if not env_token else run_with_token(path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert ("newer" in lines[0]) if problem is newer else ("damaged" in lines[0])
    assert path.read_bytes() == before  # nothing written


def run_with_token(db: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "SUBSIDY_DB": str(db),
        "SUBSIDY_LANG": "en",
        "TELEGRAM_BOT_TOKEN": "123456:" + "A" * 35,
        "TELEGRAM_API_URL": "http://127.0.0.1:9/bot",  # never reached
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        cwd=db.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_delete_leaves_no_copy_of_the_text_in_the_file_or_its_wal(tmp_path):
    path = tmp_path / "bot.db"
    with Storage(path) as storage:
        say(storage, 1, "/start")
        say(storage, 1, MARKER)
        say(storage, 2, "/start")  # another user's data stays
        raw = MARKER.encode()
        files = lambda: b"".join(  # noqa: E731
            p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()
        )
        assert raw in files()
        storage.delete_user(1)
        assert raw not in files()
        assert storage.current("telegram", 2) is not None


def test_backup_is_a_consistent_copy_while_the_bot_writes(tmp_path):
    path, copy = tmp_path / "bot.db", tmp_path / "backup.db"
    with Storage(path) as storage:
        for chat in range(20):
            say(storage, chat, "/start")
        stop = threading.Event()

        def write() -> None:
            n = 100
            while not stop.is_set():
                say(storage, n, "/start")
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            result = cli("admin", "backup", str(copy), db=path)
        finally:
            stop.set()
            writer.join()
        assert result.returncode == 0, result.stderr
        assert str(copy) in result.stdout
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chats = {r[0] for r in conn.execute("SELECT chat_id FROM conversations")}
        assert {str(c) for c in range(20)} <= chats
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
