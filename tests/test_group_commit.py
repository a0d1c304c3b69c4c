"""Group commit (Storage.transaction): bodies of several threads share one commit, each returns
only once its writes are committed, and a body that fails undoes only its own writes."""

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.storage import Storage


def chats_on_disk(path) -> set[str]:
    """What another connection (another process) sees: committed rows only."""
    with sqlite3.connect(path) as other:
        return {r[0] for r in other.execute("SELECT chat_id FROM conversations")}


def test_waiting_writers_share_one_commit_and_return_after_it(tmp_path):
    path = tmp_path / "bot.db"
    with Storage(path) as storage:
        before = storage.commits

        def write(i: int) -> bool:
            if i == 3:  # a body that fails: its row is undone, the others stay
                with pytest.raises(ValueError), storage.transaction() as db:
                    db.execute(
                        "INSERT INTO conversations (channel, chat_id, lang, started_at,"
                        " updated_at, phase, state_json) VALUES ('console', 'bad', 'ja', '',"
                        " '', 'start', '{}')"
                    )
                    raise ValueError("a bug in the body")
                return True
            storage.start_new("console", f"c{i}", None)
            return f"c{i}" in chats_on_disk(path)  # committed by the time it returns

        with ThreadPoolExecutor(8) as pool:
            with storage.lock:  # every writer queues up behind this
                futures = [pool.submit(write, i) for i in range(8)]
                deadline = time.monotonic() + 10
                while storage._queued < 8 and time.monotonic() < deadline:
                    time.sleep(0.01)
            assert all(f.result() for f in futures)
        assert chats_on_disk(path) == {f"c{i}" for i in range(8) if i != 3}
        assert storage.commits - before < 7  # shared: fewer commits than writers


def test_writes_that_cannot_be_stored_are_never_reported_stored(tmp_path):
    with Storage(tmp_path / "bot.db") as storage:
        storage.start_new("console", "seed", None)
        pages = storage.conn.execute("PRAGMA page_count").fetchone()[0]
        storage.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                with storage.transaction() as db:
                    db.execute(
                        "UPDATE conversations SET state_json = json_object('pad', ?)",
                        ["x" * 20_000],
                    )
            except sqlite3.OperationalError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        with storage.lock:
            for th in threads:
                th.start()
        for th in threads:
            th.join(10)
        assert len(errors) == 4  # none of them believes it was stored
