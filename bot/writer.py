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
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bot.storage import Connection, Storage

MAX_BATCH = 64  # bodies per transaction at most: a burst does not delay the first one long


class Writer:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._jobs: list[tuple[Callable[[Connection], Any], bool, asyncio.Future]] = []
        self.batches = 0  # transactions run (the bench reports bodies per batch)

    def submit(self, body: Callable[[Connection], Any], durable: bool = True) -> asyncio.Future:
        """Queue `body(conn)`; the future resolves after its batch's commit with its result,
        or raises what it raised (its writes undone) or what the BEGIN/COMMIT raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.append((body, durable, future))
        if len(self._jobs) == 1:  # the first of a batch: run it once this pass is over
            loop.call_soon(self._run)
        return future

    def _run(self) -> None:
        jobs, self._jobs = self._jobs[:MAX_BATCH], self._jobs[MAX_BATCH:]
        if self._jobs:
            asyncio.get_running_loop().call_soon(self._run)
        if not jobs:
            return
        try:
            results = self.storage.run_batch([(body, durable) for body, durable, _ in jobs])
        except Exception as exc:  # the connection is closed or broken
            results = [exc] * len(jobs)
        self.batches += 1
        for (_, _, future), result in zip(jobs, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Run what is queued now (before the storage closes)."""
        while self._jobs:
            self._run()
