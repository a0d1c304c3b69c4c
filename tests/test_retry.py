"""bot/retry.py: the attempts a call gets (the first try has a fast path of its own)."""

import asyncio

import pytest

from bot import retry


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr("bot.retry.BACKOFF_S", 0)


def attempts(failures: int, retryable=lambda exc: True, stopping=None):
    calls = []

    async def make():
        calls.append(1)
        if len(calls) <= failures:
            raise OSError(f"failure {len(calls)}")
        return "done"

    async def run():
        return await retry.call("test", make, retryable, stopping)

    try:
        return asyncio.run(run()), len(calls)
    except OSError as exc:
        return str(exc), len(calls)


def test_a_first_try_that_works_is_the_only_one():
    assert attempts(0) == ("done", 1)


def test_retryable_failures_are_tried_again_up_to_the_limit():
    assert attempts(2) == ("done", 3)
    assert attempts(retry.SEND_ATTEMPTS - 1) == ("done", retry.SEND_ATTEMPTS)
    last = f"failure {retry.SEND_ATTEMPTS}"
    assert attempts(retry.SEND_ATTEMPTS) == (last, retry.SEND_ATTEMPTS)


def test_a_failure_not_retryable_is_raised_at_once():
    assert attempts(1, retryable=lambda exc: False) == ("failure 1", 1)


def test_nothing_is_retried_once_stopping():
    async def stopped():
        event = asyncio.Event()
        event.set()
        return event

    assert attempts(1, stopping=asyncio.run(stopped())) == ("failure 1", 1)
