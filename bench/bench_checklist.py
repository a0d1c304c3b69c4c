"""Cost of the checklist, against the whole dialog in the same run (not a test): the text
version and the one-page PDF (most of it fontTools reading and subsetting the font).
Run: python bench/bench_checklist.py"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_dialog import whole_dialog  # noqa: E402  (the baseline: 12 pure dialog steps)

from bot.checklist_pdf import checklist_pdf  # noqa: E402
from dialogs.checklist import checklist_text  # noqa: E402

ISSUED = dt.date(2026, 11, 29)


def median_ms(fn, n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def main() -> None:
    state = whole_dialog()
    assert state.verdict is not None, "the baseline dialog must end with a verdict"
    state.reference = "TC-7K3M-2Q"
    base = median_ms(whole_dialog, 20)
    text = median_ms(lambda: checklist_text(state, ISSUED), 50)
    pdf = median_ms(lambda: checklist_pdf(state, ISSUED), 5)
    size = len(checklist_pdf(state, ISSUED))
    print(f"{'whole dialog, 12 steps (baseline)':<36} {base:9.2f} ms")
    print(f"{'checklist as text':<36} {text:9.2f} ms  ({text / base:.2f}× the dialog)")
    print(f"{'checklist as PDF':<36} {pdf:9.2f} ms  ({pdf / base:.1f}× the dialog, {size:,} B)")


if __name__ == "__main__":
    main()
