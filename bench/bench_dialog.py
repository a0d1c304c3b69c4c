"""Speed of the hot path, printed as numbers (not a test): parsing, the rules, one dialog step,
and one stored input (SQLite transaction + fsync). Run: python bench/bench_dialog.py"""

from __future__ import annotations

import datetime as dt
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from bot.storage import Storage
from dialogs.engine import step
from dialogs.io import State, UserInput
from dialogs.parsing import parse_money
from rules import evaluate

ON = dt.date(2024, 6, 1)
DIALOG = ["/start", "株式会社", "製造業", "3億円", "いいえ", "いいえ", "はい", "LED", "はい",
          "購入", "64.1", "54.1"]


def timed(label: str, fn, n: int) -> None:
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    print(f"{label:<40} median {statistics.median(samples):9.1f} µs  "
          f"(min {min(samples):.1f}, max {max(samples):.1f}, n={n}×5)")


def whole_dialog() -> State:
    s = State()
    for text in DIALOG:
        s, _ = step(s, UserInput(text=text), on=ON)
    return s


def main() -> None:
    full = whole_dialog()
    assert full.verdict["status"] == "eligible"
    timed("parse_money('1億2千3百万円')", lambda: parse_money("1億2千3百万円"), 2000)
    timed("evaluate(full answers)", lambda: evaluate(full.answers, on=ON), 2000)
    timed("whole dialog, 12 steps (pure)", whole_dialog, 50)
    with tempfile.TemporaryDirectory() as tmp, Storage(Path(tmp) / "b.db") as storage:
        def stored_dialog():
            chat = uuid.uuid4().hex
            for text in DIALOG:
                storage.handle("console", chat, None, uuid.uuid4().hex, UserInput(text=text),
                               lambda s, i: step(s, i, on=ON))
        timed("whole dialog, 12 stored inputs (SQLite)", stored_dialog, 5)
    tracemalloc.start()
    whole_dialog()
    _, peak = tracemalloc.get_traced_memory()
    print(f"{'peak memory of one dialog (tracemalloc)':<40} {peak / 1024:9.1f} KiB")


if __name__ == "__main__":
    main()
