"""Settings of the Python process for a long-running bot (Telegram, LINE), applied once its
start-up is done."""

from __future__ import annotations

import gc

# The cyclic garbage collector's young generation is collected after this many net container
# allocations (CPython's default: 700). Each update makes and drops thousands of short-lived
# objects (python-telegram-bot's, the dialog's), so with the default the collector ran several
# times per update and its passes were ~10% of the time per update in the 1,000-chat bench;
# with this, ~1%. The cost: up to this many unreachable objects wait a little longer (a few MB).
YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Freeze what start-up made (modules, models, data, the analyser's dictionary once loaded
    later is not included): the collector's full passes no longer walk it; and collect the
    young generation less often (YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
