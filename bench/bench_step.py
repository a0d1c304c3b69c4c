"""CPU of the pure dialog step on the harness's concurrent mix (printed, never asserted).

Records the (state, input) pairs the concurrent phase feeds `step` (typed Japanese and presses
of N chats at once), then times `step` over them again: as they come (the bench's dialogs
repeat their texts, so readings are remembered) and with every typed text as if never seen
(the readings' memo emptied before each step). Run: python -m bench.bench_step [chats]"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench import harness
from dialogs import understanding


async def record(chats: int) -> list:
    work = Path(tempfile.mkdtemp())
    project = await harness.Project.make(work / "p.db")
    delivery = project.bot.delivery
    real, pairs = delivery.step, []

    def recording(state, inp):
        pairs.append((state.model_copy(deep=True), inp))
        return real(state, inp)

    delivery.step = recording
    await harness.concurrent(project, chats)
    await project.close()
    return [(real, state, inp) for state, inp in pairs]


def timed(pairs: list, unseen: bool) -> float:
    """Mean CPU ms per step over the pairs."""
    t0 = time.process_time()
    for step, state, inp in pairs:
        if unseen:
            understanding._remembered.cache_clear()
        step(state, inp)
    return (time.process_time() - t0) / len(pairs) * 1e3


def main() -> None:
    chats = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    pairs = asyncio.run(record(chats))
    for label, unseen in (("as they come", False), ("every typed text new", True)):
        runs = [timed(pairs, unseen) for _ in range(3)]
        print(
            f"step, {len(pairs)} steps of {chats} chats, {label:<22} "
            f"{min(runs):.3f} ms (runs: {', '.join(f'{r:.3f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()
