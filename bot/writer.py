"""The bot's writes from async code: batched on the event loop, one commit per batch.

`Writer.submit(body)` queues `body(conn)` and returns a future. The bodies queued during one
pass of the event loop run together, on the loop, in one transaction (`Storage.run_batch`: a
savepoint each, one COMMIT, one fsync when any is durable), and their futures are settled after
that commit. So each caller resumes only after a durable commit, and what it does next (confirm
the input, send the reply) follows it, exactly as if it had committed alone; but a burst of
inputs from many chats costs one commit and one fsync per batch, not per input.

Why on the loop and not in a worker thread: the statements take microseconds, and sqlite3
releases the GIL around each one, so a writer thread had to win the GIL back from the loop after
every statement (up to the 5 ms switch interval each time); on the loop nobody competes for it.
What waits is the fsync, once per batch, while the loop has nothing else it could do for those
chats. Bodies run in submission order, so one chat's writes (its turn, then the "sent" mark of
its replies) keep their order.

The loop never waits for someone else's write: while a thread (a deletion, a flow-control
note) or another process (an admin tool) holds the database, the batch is tried again a moment
later and the loop goes on; after BUSY_S (the busy timeout any writer waits) the batch fails:
every body gets "database is locked" (NotStored for an input: not confirmed, delivered again).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from bot.storage import BUSY_TIMEOUT_MS, Busy, Connection, Storage

MAX_BATCH = 64  # bodies per transaction at most: a burst does not delay the first one long
INLINE_DURABLE = 1  # a batch with at most this many durable bodies pays its fsync on the loop
BUSY_RETRY_S = 0.002  # a busy database is tried again this soon (the loop goes on meanwhile)
BUSY_S = BUSY_TIMEOUT_MS / 1000  # ... for as long as any writer waits; then it fails


class Writer:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._jobs: list[tuple[Callable[[Connection], Any], bool, asyncio.Future]] = []
        self._soon: asyncio.Handle | None = None  # the next batch's run, when one is due
        self._busy_since: float | None = None  # the database has been someone else's since
        self.batches = 0  # transactions run (tests count them)
        # durable bodies committed without their fsync: (commits to cover, future, result)
        self._unsynced: list[tuple[int, asyncio.Future, Any]] = []
        self._syncing: asyncio.Future | None = None  # sync_wal running in the thread
        self._pool: Any = None  # that thread (a ThreadPoolExecutor of one), made on first use

    def submit(self, body: Callable[[Connection], Any], durable: bool = True) -> asyncio.Future:
        """Queue `body(conn)`; the future resolves after its batch's commit with its result,
        or raises what it raised (its writes undone) or what the BEGIN/COMMIT raised. When
        another body of the batch fails, it runs again (see Storage.run_batch): it must do
        nothing outside the database that it would not repeat."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.append((body, durable, future))
        if self._soon is None:  # the first of a batch: run it once this pass is over
            self._soon = loop.call_soon(self._run)
        return future

    def _run(self, wait: bool = False) -> None:
        self._soon = None
        jobs = self._jobs[:MAX_BATCH]
        if not jobs:
            return
        # Under load a batch's fsync runs in a thread while the loop goes on with other chats;
        # its durable bodies' callers resume after it. One input alone pays it here (no hop).
        # Not while earlier commits wait for their fsync (at close too): a body may read their
        # rows (an input seen already) and be confirmed by a COMMIT that wrote, and so synced,
        # nothing.
        inline = (wait or sum(durable for _, durable, _ in jobs) <= INLINE_DURABLE) and (
            self.storage.synced >= self.storage.unsynced
        )
        try:
            results = self.storage.run_batch(
                [(body, durable) for body, durable, _ in jobs], wait=wait, fsync=inline
            )
        except Busy as exc:
            self._busy_since = self._busy_since or time.monotonic()
            if time.monotonic() - self._busy_since < BUSY_S:
                self._soon = asyncio.get_running_loop().call_later(BUSY_RETRY_S, self._run)
                return
            # busy as long as any writer waits: the batch fails (NotStored for an input)
            results = [sqlite3.OperationalError(f"database is locked ({exc})")] * len(jobs)
        except BaseException as exc:  # the connection is closed or broken, or a body was
            # interrupted (all undone): every caller hears it (not stored), none waits for ever
            error = exc if isinstance(exc, Exception) else sqlite3.OperationalError(repr(exc))
            results = [error] * len(jobs)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                self._fail(jobs, error)
                raise
        self._busy_since = None
        del self._jobs[: len(jobs)]
        if self._jobs and self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._run)
        self.batches += 1
        covers = self.storage.unsynced
        for (_, durable, future), result in zip(jobs, results, strict=True):
            if durable and not inline and not isinstance(result, BaseException):
                self._unsynced.append((covers, future, result))
            else:
                _settle(future, result)
        if self._unsynced and self._syncing is None:
            self._sync()

    def _fail(self, jobs: list, exc: BaseException) -> None:
        del self._jobs[: len(jobs)]
        for _, _, future in jobs:
            _settle(future, exc)

    def _sync(self) -> None:
        """fsync the log in the thread, for every durable body committed so far."""
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="wal-sync")
        loop = asyncio.get_running_loop()
        self._syncing = loop.run_in_executor(self._pool, self.storage.sync_wal)
        self._syncing.add_done_callback(self._synced)

    def _synced(self, done: asyncio.Future) -> None:
        self._syncing = None
        error = done.exception()  # as a failed COMMIT's: not stored (each caller's NotStored)
        covered = self.storage.synced
        waiting, self._unsynced = self._unsynced, []
        for covers, future, result in waiting:
            if error is not None:
                _settle(future, error)
            elif covers <= covered:
                _settle(future, result)
            else:  # committed while the fsync ran: the next one covers it
                self._unsynced.append((covers, future, result))
        if self._unsynced:
            self._sync()

    def close(self) -> None:
        """Run what is queued now, waiting for the database if need be, and make durable
        what waits for its fsync (before the storage closes)."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        while self._jobs:
            self._run(wait=True)
        if self._unsynced:
            try:
                self.storage.sync_wal()
                error = None
            except sqlite3.Error as exc:
                error = exc
            for _, future, result in self._unsynced:
                _settle(future, error or result)
            self._unsynced = []
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None  # inputs still in flight at shutdown commit after this: a new one


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.cancelled():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
