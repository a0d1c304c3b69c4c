"""The programme's calendar: "today" is the date in Tochigi (Asia/Tokyo) wherever the server
runs, so on a UTC server the evening of 31 March is already 1 April. Every face uses this.

`texts_on(date)` says which day's ruleset the texts being rendered should quote (a dialog run
with `--date`); outside it, texts quote the ruleset in force today."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
_texts_on: ContextVar[dt.date | None] = ContextVar("texts_on", default=None)


def today(now: dt.datetime | None = None) -> dt.date:
    """The date in Tochigi at `now` (an aware datetime; default: this instant)."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(TOKYO).date()


class _TextsOn:
    """The context manager `texts_on` returns (a class: a dialog step enters one each time,
    and a generator-based one costs several times more)."""

    def __init__(self, on: dt.date | None):
        self.on = on

    def __enter__(self) -> None:
        # already so (a step inside a step, or the same date again): nothing to set
        self.token = None if _texts_on.get() == self.on else _texts_on.set(self.on)

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            _texts_on.reset(self.token)


def texts_on(on: dt.date | None) -> _TextsOn:
    return _TextsOn(on)


def texts_date() -> dt.date:
    return _texts_on.get() or today()
