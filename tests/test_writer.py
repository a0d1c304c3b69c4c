"""bot/writer.py: writes from async code, batched per pass of the event loop. Bodies queued
together share one commit; each caller resumes only after that commit; a body that fails undoes
only its own writes; nothing is reported stored that is not; order is kept."""

import asyncio
import sqlite3

import pytest

from bot.storage import Storage
from bot.writer import MAX_BATCH, Writer

INSERT = (
    "INSERT INTO conversations (channel, chat_id, lang, started_at, updated_at, phase,"
    " state_json) VALUES ('console', ?, 'ja', '', '', 'start', '{}')"
)


def on_disk(path) -> list[str]:
    """What another connection sees: committed rows only, in insertion order."""
    with sqlite3.connect(path) as other:
        return [r[0] for r in other.execute("SELECT chat_id FROM conversations ORDER BY id")]


def insert(chat: str, fail: bool = False):
    def body(db):
        db.execute(INSERT, [chat])
        if fail:
            raise ValueError("a bug in the body")
        return chat

    return body


def test_bodies_queued_together_share_one_commit_and_resume_after_it(tmp_path):
    path = tmp_path / "bot.db"

    async def main(storage: Storage, writer: Writer) -> list:
        before = storage.commits

        async def one(i: int):
            chat = await writer.submit(insert(f"c{i}", fail=i == 3))
            return chat in on_disk(path)  # committed by the time the caller resumes

        results = await asyncio.gather(*(one(i) for i in range(8)), return_exceptions=True)
        return [results, storage.commits - before]

    with Storage(path) as storage:
        results, commits = asyncio.run(main(storage, Writer(storage)))
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [True] * 7
    assert commits == 1
    assert on_disk(path) == [f"c{i}" for i in range(8) if i != 3]  # in order, the bad undone


def test_a_long_burst_is_cut_into_batches_in_order(tmp_path):
    path = tmp_path / "bot.db"

    async def main(writer: Writer) -> None:
        await asyncio.gather(*(writer.submit(insert(f"c{i:03}")) for i in range(MAX_BATCH * 2 + 1)))

    with Storage(path) as storage:
        writer = Writer(storage)
        asyncio.run(main(writer))
    assert writer.batches == 3
    assert on_disk(path) == [f"c{i:03}" for i in range(MAX_BATCH * 2 + 1)]


def test_a_full_disk_fails_every_body_and_stores_nothing(tmp_path):
    path = tmp_path / "bot.db"

    async def main(writer: Writer) -> list:
        return await asyncio.gather(
            *(writer.submit(insert(f"pad{i}" * 2000)) for i in range(4)), return_exceptions=True
        )

    with Storage(path) as storage:
        pages = storage.conn.execute("PRAGMA page_count").fetchone()[0]
        storage.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
        results = asyncio.run(main(Writer(storage)))
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert on_disk(path) == []


@pytest.mark.parametrize("durable", [True, False])
def test_close_writes_what_is_queued(tmp_path, durable):
    path = tmp_path / "bot.db"

    async def main(writer: Writer) -> asyncio.Future:
        future = writer.submit(insert("late"), durable=durable)
        writer.close()  # before the loop got to it
        return future

    with Storage(path) as storage:
        future = asyncio.run(main(Writer(storage)))
    assert future.result() == "late"
    assert on_disk(path) == ["late"]


def _loop_keeps_running_while(hold, release, path) -> tuple[int, list[str]]:
    """Submit a body while someone else holds the database; count the loop's ticks meanwhile."""

    async def main() -> tuple[int, list[str]]:
        with Storage(path) as storage:
            writer = Writer(storage)
            hold(storage)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            future = writer.submit(insert("after"))
            await asyncio.sleep(0.3)  # the loop goes on: the batch waits, not the loop
            assert not future.done()
            release(storage)
            chat = await asyncio.wait_for(future, 5)
            task.cancel()
            return ticks, [chat, *on_disk(path)]

    return asyncio.run(main())


def test_a_thread_holding_the_database_does_not_stop_the_loop(tmp_path):
    import threading

    held, done = threading.Event(), threading.Event()

    def hold(storage):
        def thread():
            with storage.lock:  # e.g. a deletion in a worker thread
                held.set()
                done.wait(5)

        threading.Thread(target=thread, daemon=True).start()
        held.wait(5)

    ticks, seen = _loop_keeps_running_while(hold, lambda s: done.set(), tmp_path / "bot.db")
    assert ticks >= 10 and seen == ["after", "after"]


def test_another_process_writing_does_not_stop_the_loop(tmp_path):
    other = {}

    def hold(storage):
        other["conn"] = sqlite3.connect(storage.path, isolation_level=None)
        other["conn"].execute("BEGIN IMMEDIATE")  # an admin tool writing

    def release(storage):
        other["conn"].execute("ROLLBACK")
        other["conn"].close()

    ticks, seen = _loop_keeps_running_while(hold, release, tmp_path / "bot.db")
    assert ticks >= 10 and seen == ["after", "after"]


def test_busy_for_longer_than_any_writer_waits_fails_every_body(tmp_path, monkeypatch):
    monkeypatch.setattr("bot.writer.BUSY_S", 0.1)
    path = tmp_path / "bot.db"

    async def main(writer: Writer) -> list:
        return await asyncio.gather(
            *(writer.submit(insert(f"c{i}")) for i in range(3)), return_exceptions=True
        )

    with Storage(path) as storage:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # held throughout
        try:
            results = asyncio.run(main(Writer(storage)))
        finally:
            other.execute("ROLLBACK")
            other.close()
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert on_disk(path) == []


class HeldSync:
    """Storage.sync_wal that waits until released (and counts its calls), or fails."""

    def __init__(self, storage: Storage, fail: bool = False) -> None:
        import threading

        self.storage, self.fail, self.calls = storage, fail, 0
        self.real, self.go = storage.sync_wal, threading.Event()
        storage.sync_wal = self

    def __call__(self) -> int:
        self.calls += 1
        self.go.wait(5)
        if self.fail:  # as the real one fails
            raise sqlite3.OperationalError("disk I/O error (fsync: [Errno 5] Input/output error)")
        return self.real()


def test_a_batch_resumes_its_callers_only_after_its_fsync_in_the_thread(tmp_path):
    """Under load (several durable bodies at once) the COMMIT skips the fsync and the log is
    fsynced in a thread: the callers resume only after that, the loop runs meanwhile, and a
    "sent" note (not durable) of the same batch does not wait."""

    async def main(storage: Storage, writer: Writer, sync: HeldSync) -> list:
        durable = [writer.submit(insert(f"c{i}")) for i in range(3)]
        note = writer.submit(insert("note"), durable=False)
        for _ in range(20):  # passes of the loop: committed, the fsync held
            await asyncio.sleep(0)
        seen = [f.done() for f in durable], note.done(), on_disk(tmp_path / "bot.db")
        sync.go.set()
        return [seen, await asyncio.gather(*durable), sync.calls, storage.synced]

    with Storage(tmp_path / "bot.db") as storage:
        sync = HeldSync(storage)
        seen, results, calls, synced = asyncio.run(main(storage, Writer(storage), sync))
    assert seen == ([False] * 3, True, ["c0", "c1", "c2", "note"])
    assert results == ["c0", "c1", "c2"] and calls == 1 and synced == 1


def test_a_failed_fsync_fails_the_batch_as_not_stored(tmp_path):
    async def main(storage: Storage, writer: Writer) -> list:
        return await asyncio.gather(
            *(writer.submit(insert(f"c{i}")) for i in range(2)), return_exceptions=True
        )

    with Storage(tmp_path / "bot.db") as storage:
        sync = HeldSync(storage, fail=True)
        sync.go.set()
        results = asyncio.run(main(storage, Writer(storage)))
    assert all(isinstance(r, sqlite3.OperationalError) and "fsync" in str(r) for r in results)


def test_one_input_alone_pays_its_fsync_in_the_commit(tmp_path):
    async def main(writer: Writer) -> str:
        return await writer.submit(insert("c0"))

    with Storage(tmp_path / "bot.db") as storage:
        sync = HeldSync(storage)
        assert asyncio.run(main(Writer(storage))) == "c0"
        assert (sync.calls, storage.unsynced) == (0, 0)


def test_readers_of_committed_rows_wait_for_the_fsync(tmp_path):
    """`Storage.reading` (the outbox's readers) never sees a row a power cut could undo: what
    was committed without its fsync is synced first."""

    async def main(storage: Storage, writer: Writer, sync: HeldSync) -> list:
        durable = [writer.submit(insert(f"c{i}")) for i in range(2)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        sync.go.set()  # the thread's fsync and the reader's may both run: either covers it
        with storage.reading():
            seen = storage.synced >= storage.unsynced == 1
        await asyncio.gather(*durable)
        return seen

    with Storage(tmp_path / "bot.db") as storage:
        sync = HeldSync(storage)
        assert asyncio.run(main(storage, Writer(storage), sync)) is True


def test_close_makes_what_waits_for_its_fsync_durable(tmp_path):
    async def main(storage: Storage, writer: Writer, sync: HeldSync) -> list:
        durable = [writer.submit(insert(f"c{i}")) for i in range(2)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        sync.go.set()
        writer.close()
        return [f.done() and f.result() for f in durable]

    with Storage(tmp_path / "bot.db") as storage:
        sync = HeldSync(storage)
        assert asyncio.run(main(storage, Writer(storage), sync)) == ["c0", "c1"]
        assert storage.synced == storage.unsynced == 1


def test_after_a_failed_fsync_nothing_more_is_reported_stored(tmp_path):
    """The rows of a batch whose fsync failed stay committed (not durable): a redelivered
    input read in a later batch would be a "duplicate", confirmed by a COMMIT that wrote, and
    so synced, nothing. Such a batch waits for the log's fsync too, and after one failure
    every fsync fails (a later success would prove nothing): not stored, until a restart."""
    from test_delivery import FakeChannel, inbound
    from test_storage import Clock, fake_step

    from bot.delivery import Delivery, NotStored

    async def main(dlv: Delivery) -> list:
        first = await asyncio.gather(
            dlv.commit_async(inbound("a", "1", chat="c1")),
            dlv.commit_async(inbound("b", "2", chat="c2")),
            return_exceptions=True,
        )
        again = await asyncio.gather(
            dlv.commit_async(inbound("a", "1", chat="c1")), return_exceptions=True
        )
        return first + again

    with Storage(tmp_path / "bot.db", clock=Clock()) as store:
        sync = HeldSync(store, fail=True)
        sync.go.set()
        results = asyncio.run(main(Delivery(store, FakeChannel(), fake_step)))
        with pytest.raises(sqlite3.OperationalError, match="fsync"):
            with store.reading():
                pass
    assert all(isinstance(r, NotStored) for r in results), results


def test_a_synchronous_commit_syncs_what_a_batch_left_unsynced(tmp_path):
    """`Storage.transaction` (refused inputs, the console) may read a row a deferred batch
    committed: its durable commit fsyncs the log even when it wrote nothing itself."""

    async def main(storage: Storage, writer: Writer) -> list:
        writer._sync = lambda: None  # the thread's fsync never starts: the batch stays unsynced
        durable = [writer.submit(insert(f"c{i}")) for i in range(2)]
        await asyncio.sleep(0)
        before = storage.synced < storage.unsynced
        with storage.transaction():
            pass  # reads, writes nothing
        after = storage.synced == storage.unsynced
        writer.close()  # settles what waits for its fsync
        return [before, after, await asyncio.gather(*durable)]

    with Storage(tmp_path / "bot.db") as storage:
        assert asyncio.run(main(storage, Writer(storage))) == [True, True, ["c0", "c1"]]


def test_a_batch_after_close_still_resolves(tmp_path):
    """At shutdown the writer is closed first, then updates still in flight commit through it:
    a batch needing the fsync thread still resumes its callers."""

    async def main(writer: Writer) -> list:
        await asyncio.gather(writer.submit(insert("a")), writer.submit(insert("b")))
        writer.close()
        late = asyncio.gather(writer.submit(insert("c")), writer.submit(insert("d")))
        return await asyncio.wait_for(late, 5)

    with Storage(tmp_path / "bot.db") as storage:
        assert asyncio.run(main(Writer(storage))) == ["c", "d"]


def test_at_close_a_body_reading_unsynced_rows_waits_for_their_fsync(tmp_path):
    """close() runs what is queued with the loop's waiting allowed, but a body that may read
    rows still waiting for their fsync (and writes nothing, so its COMMIT syncs nothing) is
    settled only after the log's fsync."""

    async def main(storage: Storage, writer: Writer) -> list:
        writer._sync = lambda: None  # the thread's fsync never starts: the batch stays unsynced
        durable = [writer.submit(insert(f"c{i}")) for i in range(2)]
        await asyncio.sleep(0)
        read = writer.submit(lambda db: db.execute("SELECT count(*) FROM conversations").fetchone())
        seen = []
        real = storage.sync_wal

        def sync() -> int:
            seen.append(read.done())
            return real()

        storage.sync_wal = sync
        writer.close()
        return [seen, read.result(), await asyncio.gather(*durable)]

    with Storage(tmp_path / "bot.db") as storage:
        assert asyncio.run(main(storage, Writer(storage))) == [[False], (2,), ["c0", "c1"]]


class IoErrorOnCommit:
    """The connection, whose COMMIT fails as a failed fsync of SQLite's own does."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.__dict__["_conn"] = conn

    def __getattr__(self, name):
        return getattr(self._conn, name)

    def commit(self):
        exc = sqlite3.OperationalError("disk I/O error")
        exc.sqlite_errorcode, exc.sqlite_errorname = 10 | (4 << 8), "SQLITE_IOERR_FSYNC"
        raise exc


def test_a_commit_whose_fsync_fails_fails_the_batches_waiting_for_theirs(tmp_path):
    """A synchronous commit (a refused input's note, in a thread) whose own fsync fails while a
    batch waits for the log's fsync: the failed writeback may have dropped the batch's pages,
    and a later fsync would report success: the batch is not stored."""

    async def main(storage: Storage, writer: Writer) -> list:
        start = writer._sync
        writer._sync = lambda: None  # the thread's fsync not started yet
        durable = [writer.submit(insert(f"c{i}")) for i in range(2)]
        await asyncio.sleep(0)
        real, storage.conn = storage.conn, IoErrorOnCommit(storage.conn)
        try:
            with pytest.raises(sqlite3.OperationalError):
                with storage.transaction() as db:
                    insert("refused")(db)
        finally:
            storage.conn = real
        writer._sync = start
        writer._sync()  # the thread's fsync, on a fresh descriptor
        return await asyncio.gather(*durable, return_exceptions=True)

    with Storage(tmp_path / "bot.db") as storage:
        results = asyncio.run(main(storage, Writer(storage)))
    assert all(isinstance(r, sqlite3.OperationalError) for r in results), results


def test_a_body_interrupted_fails_its_batch_and_the_writer_goes_on(tmp_path):
    """A body raising a BaseException (not a bug's Exception): every body of its batch is
    undone and its caller told (not stored), and the next batch runs."""

    def interrupted(db):
        db.execute(INSERT, ["x"])
        raise asyncio.CancelledError

    async def main(writer: Writer) -> list:
        batch = [writer.submit(interrupted), writer.submit(insert("c0"))]
        done = await asyncio.wait_for(asyncio.gather(*batch, return_exceptions=True), 5)
        return [type(r).__name__ for r in done] + [await writer.submit(insert("c1"))]

    with Storage(tmp_path / "bot.db") as storage:
        assert asyncio.run(main(Writer(storage))) == ["OperationalError"] * 2 + ["c1"]
    assert on_disk(tmp_path / "bot.db") == ["c1"]
