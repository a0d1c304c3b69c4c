"""Speed of the hot path, printed as numbers (not a test): parsing, the rules, one dialog step,
one stored input (SQLite transaction + fsync), and the same through the delivery core as the
adapters use it (a worker thread for the commit, the outbox row marked sent after a no-op
send: the second transaction). Run: python bench/bench_dialog.py"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import yaml

from bot.console.session import ConsoleChannel
from bot.delivery import Channel, Delivery, Inbound, Sent
from bot.storage import Storage
from dialogs import understanding
from dialogs.engine import step
from dialogs.io import State, UserInput
from dialogs.parsing import parse_money
from dialogs.understanding import understand
from rules import evaluate

ON = dt.date(2024, 6, 1)
# The inputs of a staff scenario that ends eligible (typed text, 12 turns).
SCENARIO = Path(__file__).parent.parent / "tests" / "scenarios" / "eligible_led_by_text.yaml"
DIALOG = ["/start"] + [
    str(s["say"]) for s in yaml.safe_load(SCENARIO.read_text("utf-8"))["steps"] if "say" in s
]
SENTENCE = yaml.safe_load(
    (SCENARIO.parent.parent / "data" / "understanding" / "industry.yaml").read_text("utf-8")
)[1]["text"]  # an owner's sentence from the cases
NUMERAL = "\u0031\u5104\u0032\u5343\u0033\u767e\u4e07\u5186"  # 1 oku 2 sen 3 hyaku man en


def timed(label: str, fn, n: int) -> None:
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    print(
        f"{label:<40} median {statistics.median(samples):9.1f} µs  "
        f"(min {min(samples):.1f}, max {max(samples):.1f}, n={n}×5)"
    )


def whole_dialog(unseen: bool = False) -> State:
    """The scenario's dialog; `unseen`: as if no text had been typed before (readings of typed
    text are remembered, and a bench repeats its texts)."""
    s = State()
    for text in DIALOG:
        if unseen:
            understanding._remembered.cache_clear()
        s, _ = step(s, UserInput(text=text), on=ON)
    return s


def never_seen(qid: str, text: str):
    understanding._remembered.cache_clear()
    return understand(qid, text, {}, "ja")


def first_reading() -> None:
    """The analyser's dictionary is loaded by the first typed answer, once per process."""
    t0 = time.perf_counter()
    understand("tax_arrears", DIALOG[1], {}, "ja")
    ms = (time.perf_counter() - t0) * 1e3
    print(f"{'first typed answer (loads the analyser)':<40} {ms:9.1f} ms")


def main() -> None:
    first_reading()
    full = whole_dialog()
    assert full.verdict["status"] == "eligible"
    timed(f"parse_money({NUMERAL!r})", lambda: parse_money(NUMERAL), 2000)
    timed("understand(industry, a sentence), new", lambda: never_seen("industry", SENTENCE), 200)
    timed(
        "the same sentence again (remembered)",
        lambda: understand("industry", SENTENCE, {}, "ja"),
        2000,
    )
    timed("evaluate(full answers)", lambda: evaluate(full.answers, on=ON), 2000)
    timed("whole dialog, 12 steps (pure)", whole_dialog, 50)
    timed("the same, every typed text new", lambda: whole_dialog(unseen=True), 50)
    with tempfile.TemporaryDirectory() as tmp, Storage(Path(tmp) / "b.db") as storage:

        def stored_dialog():
            chat = uuid.uuid4().hex
            delivery = Delivery(storage, ConsoleChannel(), lambda s, i: step(s, i, on=ON))
            for text in DIALOG:
                delivery.commit(Inbound(chat, None, uuid.uuid4().hex, None, UserInput(text=text)))

        timed("whole dialog, 12 stored inputs (SQLite)", stored_dialog, 5)

        class NoSend(Channel):  # the delivery core's own cost: outbox row, mark sent
            name = "telegram"

            async def send(self, chat, replies, marks, meta):
                return Sent(len(replies), marks)

        core = Delivery(storage, NoSend(), lambda s, i: step(s, i, on=ON))

        async def delivered():
            chat = uuid.uuid4().hex
            for text in DIALOG:
                inbound = Inbound(chat, None, uuid.uuid4().hex, None, UserInput(text=text))
                await core.deliver(await asyncio.to_thread(core.commit, inbound))

        timed("the same through commit+deliver+mark", lambda: asyncio.run(delivered()), 5)
    tracemalloc.start()
    whole_dialog()
    _, peak = tracemalloc.get_traced_memory()
    print(f"{'peak memory of one dialog (tracemalloc)':<40} {peak / 1024:9.1f} KiB")


if __name__ == "__main__":
    main()
