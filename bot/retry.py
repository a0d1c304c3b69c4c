"""Retrying a call to a messaging API in the tight loop: the policy both adapters share.

Only a failure known to come before the service acted is retried here (connection refused, 5xx,
429): retrying it cannot deliver anything twice. An ambiguous one (read timeout, connection
dropped after the request went out: the message may have arrived) ends the attempt, unless the
call is idempotent (LINE's push with its retry key); the outbox tries it later, once per
attempt. Once shutdown began (`stopping` set) nothing is retried and a back-off wait ends at
once: what is unsent stays in the outbox for the next start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_exponential as _exponential

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 4  # 3 retries, 0.5 s, 1 s, 2 s apart
BACKOFF_S = 0.5
T = TypeVar("T")


async def call(
    what: str,
    make: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    stopping: asyncio.Event | None = None,
    describe: Callable[[BaseException], str] = str,
) -> T:
    """`await make()`, retried with back-off while `retryable(exc)` and not `stopping`;
    the last failure is raised. `describe` words a failure for the log (no secrets)."""
    try:  # the usual case, a first try that works, costs no retry machinery (~50 µs a call)
        return await make()
    except Exception as exc:
        if not retryable(exc) or _stopped(stopping):
            raise
        first = exc
    return await _retrying(what, make, retryable, stopping, describe, first)


async def _retrying(
    what: str,
    make: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    stopping: asyncio.Event | None,
    describe: Callable[[BaseException], str],
    first: BaseException,
) -> T:
    """The attempts after a first that failed with `first`."""

    async def sleep(seconds: float) -> None:
        if stopping is None:
            return await asyncio.sleep(seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)

    last: list[BaseException] = []  # the failure before a back-off wait

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        last[:] = [exc]
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("%s failed (%s); retrying in %.1f s", what, describe(exc), wait)

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda exc: retryable(exc) and not _stopped(stopping)),
        wait=_exponential(multiplier=BACKOFF_S),  # read at each call: tests set BACKOFF_S
        stop=stop_after_attempt(SEND_ATTEMPTS),
        sleep=sleep,
        before_sleep=warn,
        reraise=True,
    )
    result: Any = None
    async for attempt in retrying:
        with attempt:
            if attempt.retry_state.attempt_number == 1:  # that is the first try: its failure
                raise first
            if last and _stopped(stopping):  # shutdown began during the wait: no new try
                raise last[0]
            result = await make()
    return result


def _stopped(stopping: asyncio.Event | None) -> bool:
    return stopping is not None and stopping.is_set()
