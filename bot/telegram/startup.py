"""Start-up calls to the Bot API (getMe, setWebhook/deleteWebhook) survive a passing outage.

A 502 or a dropped connection while the bot starts (a proxy restarting, the network coming up
after the host) used to end the process. These calls are retried with exponential back-off
(tenacity), obeying 429's retry_after, for up to STARTUP_PATIENCE_S; a rejected token or a
bad request is not retried: it fails at once with its one-line message."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

STARTUP_PATIENCE_S = 300.0
BACKOFF = wait_exponential(multiplier=0.5, max=30)  # 0.5 s, 1 s, 2 s ... 30 s
T = TypeVar("T")


def _passing(exc: BaseException) -> bool:
    """Network errors, timeouts, 5xx and 429: worth another try. Not a bad request."""
    return isinstance(exc, RetryAfter) or (
        isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)
    )


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RetryAfter):
        after = exc.retry_after
        return after.total_seconds() if isinstance(after, dt.timedelta) else float(after)
    return BACKOFF(state)


def _warn(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning("start-up call failed (%s); retrying in %.1f s", exc, wait)


async def call(make: Callable[[], Awaitable[T]], patience: float = STARTUP_PATIENCE_S) -> T:
    """`await make()`, retried while the failure is a passing one."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(_passing),
        wait=_wait,
        stop=stop_after_delay(patience),
        before_sleep=_warn,
        reraise=True,
    )
    result: Any = None
    async for attempt in retrying:
        with attempt:
            result = await make()
    return result
