"""bot/runtime.py: the collector's settings for a long-running bot."""

import gc

from bot.runtime import YOUNG_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_and_collects_the_young_generation_less_often():
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_freeze_count() > 0  # what start-up made is out of the full passes
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
