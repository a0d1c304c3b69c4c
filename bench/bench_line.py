"""Speed of the LINE webhook, printed as numbers (not a test): the real `subsidy-bot line`
process against the Messaging API emulator on 127.0.0.1, whole dialogs by typed text. For each
input: the time until the webhook answers 200 (the commit is inside it) and until the reply
reaches the user; as a baseline in the same run, one stored input in-process (the delivery
core's commit with fsync). Run: python bench/bench_line.py [USERS]"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_dialog import DIALOG, ON  # noqa: E402
from bot.console.session import ConsoleChannel  # noqa: E402
from bot.delivery import Delivery, Inbound  # noqa: E402
from bot.storage import Storage  # noqa: E402
from dialogs.engine import step  # noqa: E402
from dialogs.io import UserInput  # noqa: E402
from tests.e2e.lineproc import LineProcess  # noqa: E402
from tests.line_emulator import LineEmulator  # noqa: E402


def ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)
    return f"median {statistics.median(samples):6.2f} ms, p95 {q[18]:6.2f} ms"


def baseline(work: Path, n: int) -> list[float]:
    """One input stored in-process: dedup, step, one transaction with fsync."""
    with Storage(work / "base.db") as storage:
        core = Delivery(storage, ConsoleChannel(), lambda s, i: step(s, i, on=ON))
        out = []
        for k in range(n):
            text = DIALOG[k % len(DIALOG)]
            inbound = Inbound(f"c{k // len(DIALOG)}", None, f"u{k}", None, UserInput(text=text))
            t0 = time.perf_counter()
            core.commit(inbound)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def main(users: int = 10) -> None:
    work = Path(tempfile.mkdtemp())
    to_200, to_reply = [], []
    with LineEmulator() as emu, LineProcess(emu, work, work / "bot.db", LOG_LEVEL="WARNING"):
        for _ in range(users):
            user = emu.new_user_id()
            for text in DIALOG:
                before = len(emu.messages(user))
                t0 = time.perf_counter()
                status, _ = emu.send_text(user, text)
                to_200.append((time.perf_counter() - t0) * 1000)
                assert status == 200, status
                emu.wait_for_messages(user, before + 1)
                to_reply.append((time.perf_counter() - t0) * 1000)
    base = baseline(work, len(to_200))
    print(f"inputs: {len(to_200)} ({users} dialogs of {len(DIALOG)})")
    print(f"stored input in-process (baseline): {ms(base)}")
    print(f"webhook answered 200:               {ms(to_200)}")
    print(f"reply reached the user:             {ms(to_reply)}")
    b = statistics.median(base)
    print(
        f"ratios to the baseline (medians): 200 x{statistics.median(to_200) / b:.1f},"
        f" reply x{statistics.median(to_reply) / b:.1f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
