"""The bot's writes from async code: one thread, batches, one commit per batch.

`Writer.submit(body)` queues `body(conn)` and returns an awaitable; the writer thread takes
every body queued so far (up to MAX_BATCH), runs them in one transaction
(`Storage.run_batch`: a savepoint each, one COMMIT, one fsync when any is durable) and hands the
results back to the event loop in one call. Each caller resumes only after that commit, so what
it does next (confirm the input, send the reply) follows a durable commit, exactly as if it had
committed alone; but a burst of inputs from many chats costs one thread hop and one fsync per
batch, not per input. The statements themselves take microseconds; the fsync is what waits,
and it waits in this thread, not on the event loop.

Bodies run in submission order, so one chat's writes (its turn, then the "sent" mark of its
replies) keep their order without the caller waiting in between.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any

from bot.storage import Connection, Storage

MAX_BATCH = 64  # bodies per transaction at most: a burst does not delay the first one long

_STOP = object()


class Writer:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0  # transactions run (the bench reports bodies per batch)

    def submit(self, body: Callable[[Connection], Any], durable: bool = True) -> asyncio.Future:
        """Queue `body(conn)`; the future resolves after its batch's commit with its result,
        or raises what it raised (its writes undone) or what the BEGIN/COMMIT raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._thread is None:
            self._start()
        self._queue.put((body, durable, loop, future))
        return future

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Run what is queued, then end the thread (before the storage closes)."""
        thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(job is _STOP for job in jobs)
            jobs = [job for job in jobs if job is not _STOP]
            if jobs:
                try:
                    results = self.storage.run_batch([(job[0], job[1]) for job in jobs])
                except Exception as exc:  # the connection is closed or broken
                    results = [exc] * len(jobs)
                self.batches += 1
                by_loop: dict[asyncio.AbstractEventLoop, list] = {}
                for (_, _, loop, future), result in zip(jobs, results, strict=True):
                    by_loop.setdefault(loop, []).append((future, result))
                for loop, done in by_loop.items():
                    try:
                        loop.call_soon_threadsafe(_settle, done)
                    except RuntimeError:  # that loop is closed: nobody waits any more
                        pass
            if stop:
                return


def _settle(done: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in done:
        if future.cancelled():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
