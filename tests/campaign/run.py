"""The load and fault campaign: the real bot process (`python -m bot.cli run`) against the Bot
API emulator, with many chats answering like people, random SIGKILLs, injected 429/5xx and
dropped connections, and one chat that floods. Afterwards it checks what the bot promises:

- every confirmed answer (an input the bot replied to) is stored, in order, in its chat;
- every conversation resumes across the kills and reaches the verdict its answers lead to;
- `PRAGMA integrity_check` is ok;
- no chat received a message that belongs to another chat;
- no chat waited more than WAIT_BOUND_S for a reply while the bot was up (kills excluded),
  although one chat flooded; the flood is stored in order or refused (one notice per burst).

It lives under tests/ because it drives tests/emulator and tests/e2e (the test-only parts, not
installed with the package): `python -m tests.campaign [--quick] [--seed N]` from the checkout.
"""

from __future__ import annotations

import html
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from locales import t

try:  # tests/ is not a package: importable either way
    from tests.e2e.botproc import BotProcess
    from tests.emulator import BotApiEmulator
except ImportError:
    from e2e.botproc import BotProcess
    from emulator import BotApiEmulator

SCRIPTS = {  # typed answers, as people type them; each leads to its verdict
    "eligible": [
        "株式会社です", "製造業", "３億円", "ありません", "該当しません", "はい", "LED", "はい",
        "購入", "64.1トン", "54.1 t-CO2",
    ],
    "ineligible": ["合同会社", "小売業", "5,001万円", "約51名", "このまま"],
    "undetermined": ["NPO法人", "いいえ", "いいえ", "はい", "コージェネレーション", "購入"],
}  # fmt: skip
WAIT_BOUND_S = 15.0  # a person's reply, with the bot up; faults and back-off included
FLOOD_BURST = 40
NOTICES = {t(key, "ja") for key in ("robustness.flood.wait", "telegram.error")}


@dataclass
class Plan:
    chats: int
    rounds: int  # each chat runs its script this many times (/restart between)
    kill_every: tuple[float, float]  # seconds between SIGKILLs (uniform)
    fault_every: tuple[float, float]
    # ... or inputs between them, whichever comes first: a fast bot must not finish its
    # dialogs between two kills, so the campaign's harm does not depend on the bot's speed
    kill_every_inputs: tuple[int, int]
    fault_every_inputs: tuple[int, int]
    floods: int
    deadline_s: float


QUICK = Plan(
    chats=4,
    rounds=1,
    kill_every=(3, 5),
    fault_every=(0.3, 0.8),
    kill_every_inputs=(8, 14),
    fault_every_inputs=(2, 3),
    floods=1,
    deadline_s=180,
)
FULL = Plan(
    chats=24,
    rounds=3,
    kill_every=(2, 5),
    fault_every=(0.2, 0.6),
    kill_every_inputs=(20, 60),
    fault_every_inputs=(3, 8),
    floods=4,
    deadline_s=900,
)


@dataclass
class Person:
    """A chat answering its script like a person: the next answer once the last one was
    confirmed (stored; Telegram's offset moved past it) and a reply came after it."""

    chat: int
    outcome: str
    rounds: int
    inputs: list[str] = field(default_factory=list)
    waiting: tuple[int, float, int] | None = None  # (update id, sent at, messages seen then)
    sent: list[tuple[int, str]] = field(default_factory=list)  # (update id, text)
    waits: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for n in range(self.rounds):
            self.inputs += (["/start"] if n == 0 else ["/restart"]) + SCRIPTS[self.outcome]
        self.inputs.reverse()  # popped from the end


@dataclass
class Figures:
    chats: int = 0
    inputs: int = 0
    flood_inputs: int = 0
    flood_stored: int = 0
    kills: int = 0
    faults: int = 0
    answers_checked: int = 0
    lost: int = 0
    wrong_chat: int = 0
    unresumed: int = 0
    integrity: str = ""
    waits: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        waits = sorted(self.waits) or [0.0]
        return "\n".join(
            [
                f"chats: {self.chats} (+1 flooding)",
                f"inputs: {self.inputs} answered by people, {self.flood_inputs} flooded"
                f" ({self.flood_stored} stored in order, the rest refused with a notice)",
                f"kills: {self.kills} (SIGKILL at random moments)",
                f"faults: {self.faults} (429, 5xx, dropped connections before/after the call)",
                f"answers checked: {self.answers_checked}",
                f"lost: {self.lost}",
                f"replies to the wrong chat: {self.wrong_chat}",
                f"conversations not resumed to their verdict: {self.unresumed}",
                f"integrity_check: {self.integrity}",
                f"reply wait (bot up): median {statistics.median(waits):.2f} s,"
                f" max {waits[-1]:.2f} s (bound {WAIT_BOUND_S:.0f} s)",
            ]
        )


def plain(message_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", message_html)).strip()


def inject_fault(emu: BotApiEmulator, rng: random.Random) -> None:
    kind = rng.randrange(6)
    if kind == 0:
        emu.fail_next("sendMessage", status=429, retry_after=1)
    elif kind == 1:
        emu.fail_next(rng.choice(["sendMessage", "getUpdates"]), status=rng.choice([500, 502]))
    elif kind == 2:
        emu.drop_next("sendMessage")  # lost before the call: it is retried
    elif kind == 3:
        emu.drop_next("sendMessage", after=True)  # sent, but the answer lost: may come twice
    elif kind == 4:
        emu.drop_next("getUpdates", after=True)
    else:  # (no editMessageReplyMarkup: old keyboards are not stripped, a fault there never fires)
        emu.fail_next("sendMessage", status=503)


def run(plan: Plan, seed: int = 1, workdir: Path | None = None, progress: bool = False) -> Figures:
    rng = random.Random(seed)
    figures = Figures(chats=plan.chats)
    confirmed: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp, BotApiEmulator() as emu:
        emu.on_confirm = confirmed.update  # the update ids Telegram may forget: stored
        work = workdir or Path(tmp)
        db = work / "campaign.db"
        outcomes = list(SCRIPTS)
        people = [Person(2000 + i, outcomes[i % 3], plan.rounds) for i in range(plan.chats)]
        flooder, floods_left = 9999, plan.floods
        bot = BotProcess(emu, work, db).start()
        down: list[tuple[float, float]] = []  # (killed, ready again)
        now = time.monotonic()
        next_kill = now + rng.uniform(*plan.kill_every)
        next_fault = now + rng.uniform(*plan.fault_every)
        kill_at_input = rng.randint(*plan.kill_every_inputs)
        fault_at_input = rng.randint(*plan.fault_every_inputs)
        next_flood = now + 1.0
        deadline = now + plan.deadline_s
        next_progress = now + 30
        while time.monotonic() < deadline:
            now = time.monotonic()
            if progress and now >= next_progress:
                left = sum(len(p.inputs) + (p.waiting is not None) for p in people)
                print(
                    f"... {figures.inputs} inputs, {left} to go, {figures.kills} kills,"
                    f" {figures.faults} faults",
                    file=sys.stderr,
                    flush=True,
                )
                next_progress = now + 30
            if all(not p.inputs and p.waiting is None for p in people) and not floods_left:
                break
            if now >= next_kill or figures.inputs >= kill_at_input:
                kill_at_input = figures.inputs + rng.randint(*plan.kill_every_inputs)
                bot.stop(signal.SIGKILL)
                figures.kills += 1
                bot.start()
                down.append((now, time.monotonic()))
                next_kill = time.monotonic() + rng.uniform(*plan.kill_every)
            due = now >= next_fault or figures.inputs >= fault_at_input
            if due and not emu.faults_pending:  # one at a time: no backlog
                fault_at_input = figures.inputs + rng.randint(*plan.fault_every_inputs)
                inject_fault(emu, rng)
                figures.faults += 1
                next_fault = now + rng.uniform(*plan.fault_every)
            if floods_left and now >= next_flood:
                for _ in range(FLOOD_BURST):
                    emu.send_text(flooder, f"flood-{figures.flood_inputs}")
                    figures.flood_inputs += 1
                floods_left -= 1
                next_flood = now + 6.0
            for p in people:
                if p.waiting is not None:
                    update_id, sent_at, seen = p.waiting
                    if update_id not in confirmed or len(emu.bot_messages(p.chat)) <= seen:
                        continue
                    if not any(sent_at <= ready and killed <= now for killed, ready in down):
                        p.waits.append(now - sent_at)  # no kill while it waited
                    p.waiting = None
                if p.inputs:
                    text = p.inputs.pop()
                    seen = len(emu.bot_messages(p.chat))
                    update_id = emu.send_text(p.chat, text)
                    figures.inputs += 1
                    p.sent.append((update_id, text))
                    p.waiting = (update_id, now, seen)
            time.sleep(0.02)
        settle = time.monotonic() + 60  # the last updates confirmed, the outbox empty
        while time.monotonic() < settle and (emu.pending_update_count or _unsent(db)):
            time.sleep(0.1)
        try:
            bot.stop(timeout=60)
        except subprocess.TimeoutExpired:
            bot.kill()
            figures.problems.append("the bot took over 60 s to stop on SIGTERM")
        if time.monotonic() >= deadline:
            figures.problems.append("the campaign did not finish before its deadline")
        for p in people:
            if p.waiting is not None:
                update_id, _, seen = p.waiting
                figures.problems.append(
                    f"chat {p.chat}: no reply to update {update_id}"
                    f" (confirmed: {update_id in confirmed}, messages: {seen} then,"
                    f" {len(emu.bot_messages(p.chat))} now)"
                )
        check(figures, db, emu, people, flooder, confirmed)
    return figures


def _unsent(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]
    except sqlite3.Error:
        return 1
    finally:
        conn.close()


def check(
    figures: Figures, db: Path, emu, people: list[Person], flooder: int, confirmed: set[int]
) -> None:
    conn = sqlite3.connect(db)
    try:
        figures.integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if figures.integrity != "ok":
            figures.problems.append(f"integrity_check: {figures.integrity}")

        def inputs_of(chat: int) -> list[str]:
            sql = (
                "SELECT e.raw_text FROM events e JOIN conversations c ON c.id = e.conversation_id"
                " WHERE c.channel = 'telegram' AND c.chat_id = ? AND e.direction = 'in'"
                " ORDER BY c.id, e.seq"
            )
            return [r[0] for r in conn.execute(sql, [str(chat)])]

        def outs_of(chat: int) -> list[str]:
            sql = (
                "SELECT e.raw_text FROM events e JOIN conversations c ON c.id = e.conversation_id"
                " WHERE c.channel = 'telegram' AND c.chat_id = ? AND e.direction = 'out'"
            )
            return [r[0] for r in conn.execute(sql, [str(chat)])]

        for p in people:
            stored = inputs_of(p.chat)
            answers = [text for update_id, text in p.sent if update_id in confirmed]
            figures.answers_checked += len(answers)
            lost = _missing_in_order(answers, stored)
            figures.lost += lost
            if lost:
                figures.problems.append(f"chat {p.chat}: {lost} confirmed answers not stored")
            status = conn.execute(
                "SELECT verdict_status FROM conversations WHERE channel = 'telegram'"
                " AND chat_id = ? ORDER BY id DESC LIMIT 1",
                [str(p.chat)],
            ).fetchone()
            if p.inputs or status is None or status[0] != p.outcome:
                figures.unresumed += 1
                figures.problems.append(f"chat {p.chat}: ended at {status}, not {p.outcome}")
            outs = outs_of(p.chat)
            for message in emu.bot_messages(p.chat):
                text = plain(message["text"])
                if text in NOTICES or any(text[:60] in o or o[:60] in text for o in outs):
                    continue
                figures.wrong_chat += 1
                figures.problems.append(f"chat {p.chat} got a message not its own: {text[:60]}")
            figures.waits += p.waits
        flood = [
            int(x.removeprefix("flood-")) for x in inputs_of(flooder) if x.startswith("flood-")
        ]
        figures.flood_stored = len(flood)
        if flood != sorted(flood):
            figures.problems.append(f"the flood was stored out of order: {flood}")
        if (
            figures.flood_inputs
            and not any(
                plain(m["text"]) == t("robustness.flood.wait", "ja")
                for m in emu.bot_messages(flooder)
            )
            and len(flood) < figures.flood_inputs
        ):
            figures.problems.append("flood inputs refused without a notice")
        late = [w for w in figures.waits if w > WAIT_BOUND_S]
        if late:
            figures.problems.append(f"{len(late)} replies took over {WAIT_BOUND_S} s")
    finally:
        conn.close()


def _missing_in_order(confirmed: list[str], stored: list[str]) -> int:
    """How many confirmed inputs are not found in `stored` as a subsequence (in order)."""
    it = iter(stored)
    return sum(1 for text in confirmed if not any(s == text for s in it))
