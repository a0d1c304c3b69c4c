"""`subsidy-bot bench` / `python -m bench`: the Telegram bot against python-telegram-bot's own
floor, in one process and run.

The floor is the cheapest bot on the same library: it echoes a text and answers a button press
(answerCallbackQuery) and echoes its value. The project is the Application `subsidy-bot run`
builds (bot.telegram.app.build), fed through its own update processor (ChatOrder) and its
confirmation path (`expect`: the poller confirms an update only once it is stored), on SQLite
on disk in the production mode (WAL, synchronous=FULL). Both get the same `Update`s through
`Application.process_update`, and talk to an offline Bot API (`OfflineAPI`, a `BaseRequest`
answering like Telegram). Dialogs: bench/dialogs.yaml (typed Japanese and presses).

Phases: low load (one update at a time, floor and project interleaved update by update);
1,000 chats at once (double presses and redelivered updates included; afterwards every chat's
stored inputs are checked: each once, in order); both under the production rate limiter
(AIORateLimiter, Telegram's ~30 requests/s); memory of open conversations; database bytes per
finished conversation; start-up of `console` and `rules check` (subprocesses).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from telegram import Update
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest

from bot.settings import Settings
from bot.storage import Storage
from bot.telegram.adapter import TelegramBot
from bot.telegram.app import MAX_CONCURRENT_UPDATES, RATE_LIMIT_RETRIES, build

TOKEN = "123456:bench-token-not-a-secret"
BOT = {"id": 123456, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}
ON = dt.date(2024, 6, 1)
ANSWERS = (  # `rules check` input: the eligible LED example (examples/answers.json)
    '{"entity_type": "company", "industry": "manufacturing", "capital_yen": 300000000,'
    ' "employees": 450, "tax_arrears": false, "antisocial_forces": false,'
    ' "site_in_tochigi": true, "project_type": "led", "replaces_existing": true,'
    ' "delivery": "purchase", "co2_before_t": 64.1, "co2_after_t": 54.1}'
)


@dataclass(frozen=True)
class Size:
    reps: int  # low load: repetitions of every dialog
    dialogs: int  # low load: how many of the dialogs (all: 0)
    chats: int  # concurrent run
    limiter_chats: int  # under the rate limiter: chats, 2 updates each
    open_chats: int  # memory: conversations opened (the figure is scaled to 10,000)
    starts: int  # subprocess start-ups timed (median)


# open_chats: 10,000 opened for real; a smaller count scaled up also multiplies the noise of
# the allocator and the collector, and overstates what is bounded (the remembered chats)
FULL = Size(reps=5, dialogs=0, chats=1000, limiter_chats=150, open_chats=10_000, starts=5)
QUICK = Size(reps=1, dialogs=3, chats=60, limiter_chats=30, open_chats=100, starts=1)


def dialogs() -> dict[str, list[dict[str, str]]]:
    return yaml.safe_load(resources.files("bench").joinpath("dialogs.yaml").read_text("utf-8"))


def first_answer() -> dict[str, str]:
    """The first typed answer of the first dialog: what chats left open have said."""
    return next(iter(dialogs().values()))[1]


# --- the offline Bot API -------------------------------------------------------------------


class OfflineAPI(BaseRequest):
    """Answers Bot API calls as Telegram would (no network), counts them, and remembers each
    chat's live keyboard (message id, label -> callback data) so that presses can be made."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.ids = itertools.count(1)
        self.keyboards: dict[int, tuple[int, dict[str, str]]] = {}

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    @property
    def read_timeout(self) -> float | None:
        return None

    async def do_request(self, url: str, method: str, request_data=None, *args, **kw):
        name = url.rsplit("/", 1)[1]
        self.calls[name] += 1
        params = request_data.parameters if request_data is not None else {}
        result: Any = True
        if name == "getMe":
            result = BOT
        elif name in ("sendMessage", "editMessageText", "editMessageReplyMarkup"):
            chat = int(params["chat_id"])
            mid = params.get("message_id") or next(self.ids)
            result = {
                "message_id": mid,
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "U"},
                "from": BOT,
                "text": params.get("text", "…"),
            }
            markup = params.get("reply_markup")
            if name == "sendMessage" and markup:
                self.keyboards[chat] = (mid, _labels(markup if isinstance(markup, str) else
                                                     json.dumps(markup)))  # fmt: skip
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def api_calls(self) -> int:
        return sum(n for name, n in self.calls.items() if name not in START_CALLS)


START_CALLS = {"getMe", "setMyCommands", "deleteWebhook"}


@functools.lru_cache(maxsize=256)  # the server side's work, kept small for both bots
def _labels(markup: str) -> dict[str, str]:
    """A keyboard's buttons (label -> callback data), from its JSON as the Bot API takes it."""
    rows = json.loads(markup)["inline_keyboard"]
    return {b["text"]: b["callback_data"] for row in rows for b in row}


# --- the two bots ----------------------------------------------------------------------------


class Face:
    """One bot under test: its Application, its offline API, how an update goes in."""

    name = ""

    def __init__(self, app: Application, api: OfflineAPI) -> None:
        self.app, self.api = app, api
        self.update_ids = itertools.count(1)

    async def feed(self, update: Update) -> None:
        await self.app.update_processor.process_update(update, self.app.process_update(update))

    def update(self, chat: int, step: dict[str, str], uid: int | None = None) -> Update:
        uid = uid or next(self.update_ids)
        user = {"id": chat, "is_bot": False, "first_name": "U"}
        chat_obj = {"id": chat, "type": "private", "first_name": "U"}
        now = int(time.time())
        if "say" in step:
            data = {
                "update_id": uid,
                "message": {"message_id": uid, "date": now, "chat": chat_obj, "from": user,
                            "text": step["say"]},
            }  # fmt: skip
        else:
            mid, value = step["message_id"], step["value"]
            data = {
                "update_id": uid,
                "callback_query": {
                    "id": f"q{uid}", "from": user, "chat_instance": "c", "data": value,
                    "message": {"message_id": mid, "date": now, "chat": chat_obj, "from": BOT,
                                "text": "…"},
                },
            }  # fmt: skip
        return Update.de_json(data, self.app.bot)

    def press(self, chat: int, label: str) -> dict[str, Any]:
        """A press on the chat's live keyboard."""
        mid, labels = self.api.keyboards.get(chat, (0, {}))
        if label not in labels:
            raise RuntimeError(f"the dialog went another way: no button {label!r} in chat {chat}")
        return {"message_id": mid, "value": labels[label]}

    async def close(self) -> None:
        await self.app.shutdown()


class Floor(Face):
    name = "floor"

    def press(self, chat: int, label: str) -> dict[str, Any]:
        return {"message_id": 1, "value": label}  # it sends no keyboard; it echoes any value

    @classmethod
    async def make(cls, limiter: bool = False) -> Floor:
        api = OfflineAPI()
        builder = ApplicationBuilder().token(TOKEN).request(api).get_updates_request(api)
        if limiter:
            builder = builder.rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
        app = builder.concurrent_updates(MAX_CONCURRENT_UPDATES).build()

        async def echo(update: Update, _) -> None:
            await update.message.reply_text(update.message.text)

        async def answer(update: Update, _) -> None:
            await update.callback_query.answer()
            await update.effective_chat.send_message(update.callback_query.data)

        app.add_handler(MessageHandler(filters.TEXT, echo))
        app.add_handler(CallbackQueryHandler(answer))
        await app.initialize()
        return cls(app, api)


class Project(Face):
    name = "project"

    def __init__(self, app: Application, api: OfflineAPI, bot: TelegramBot) -> None:
        super().__init__(app, api)
        self.bot = bot

    @classmethod
    async def make(cls, db: Path, limiter: bool = False) -> Project:
        api = OfflineAPI()
        storage = Storage(db)
        bot = TelegramBot(storage, "ja", frozenset(), ON)
        app = build(Settings(subsidy_db=db), TOKEN, bot, request=api, limiter=limiter)
        await app.initialize()
        await bot.on_start(app)  # as `run` does: command menu, outbox flusher
        return cls(app, api, bot)

    async def feed(self, update: Update) -> None:
        stored = self.bot.expect(update.update_id)  # the poller's confirmation
        await super().feed(update)
        if not await stored:
            raise RuntimeError(f"update {update.update_id} not stored")

    async def close(self) -> None:
        await self.bot.on_stop(self.app)
        await super().close()
        self.bot.storage.close()


def concrete(face: Face, chat: int, step: dict[str, str]) -> dict[str, Any]:
    """A scripted step made concrete: a press gets the live keyboard's message and value."""
    return step if "say" in step else face.press(chat, step["press"])


# --- phases ----------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "n": len(samples),
        "mean_ms": statistics.fmean(samples) * 1e3,
        "p50_ms": q[49] * 1e3,
        "p95_ms": q[94] * 1e3,
        "p99_ms": q[98] * 1e3,
    }


async def low_load(size: Size, work: Path) -> dict[str, Any]:
    """One update at a time, floor and project interleaved (which goes first alternates)."""
    floor, project = await Floor.make(), await Project.make(work / "low.db")
    script = list(dialogs().values())
    script = script[: size.dialogs] if size.dialogs else script
    times: dict[str, list[float]] = {"floor": [], "project": []}
    fsyncs: list[float] = []
    chats, texts = itertools.count(1), 0
    try:
        for step in script[0]:  # warm-up, untimed: the analyser's dictionary loads once
            for face in (project, floor):
                await face.feed(face.update(0, concrete(project, 0, step)))
        for face in (project, floor):
            face.api.calls.clear()
        for rep in range(size.reps):
            for steps in script:
                chat = next(chats)
                for k, step in enumerate(steps):
                    concrete_step = concrete(project, chat, step)  # both get its value
                    texts += "say" in step
                    pair = [(floor, concrete_step), (project, concrete_step)]
                    for face, s in pair if (rep + k) % 2 else pair[::-1]:
                        update = face.update(chat, s)
                        t0 = time.perf_counter()
                        await face.feed(update)
                        times[face.name].append(time.perf_counter() - t0)
                    fsyncs.append(fsync_s(work, 1))  # the disk's fsync, at the same moments
        n = len(times["project"])
        return {
            "floor": stats(times["floor"]),
            "project": stats(times["project"]),
            "updates": n,
            "typed_share": texts / n,
            "fsync_ms": {
                "mean": statistics.fmean(fsyncs) * 1e3,
                "p50": statistics.median(fsyncs) * 1e3,
            },  # fmt: skip
            "api_calls_per_update": {
                "floor": floor.api.api_calls() / n,
                "project": project.api.api_calls() / n,
            },
            "api_calls_project": dict(project.api.calls),
        }
    finally:
        await floor.close()
        await project.close()


async def concurrent(face: Face, chats: int, seed: int = 7) -> dict[str, Any]:
    """Every chat plays a dialog, all chats at once, each waiting for its reply before its next
    input (as a person does). Every 10th chat presses each button twice at once (the second is
    stale), every 7th has each update delivered twice at once. Returns latencies, throughput
    and, per chat, the update ids that must be stored (in order)."""
    script = list(dialogs().values())
    rng = random.Random(seed)
    latencies: list[float] = []
    expected: dict[int, list[int]] = {}
    base = 10_000_000

    async def one(chat: int) -> None:
        steps = script[rng.randrange(len(script))]
        expected[chat] = []
        await asyncio.sleep(0)
        for step in steps:
            s = concrete(face, chat, step)
            first = face.update(chat, s)
            batch = [first]
            if chat % 10 == 0 and "value" in s:  # a double press: two updates
                batch.append(face.update(chat, s))
            if chat % 7 == 0:  # a redelivery: the same update again
                batch.append(face.update(chat, s, first.update_id))
            expected[chat].append(first.update_id)
            t0 = time.perf_counter()
            await asyncio.gather(*(face.feed(u) for u in batch))
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(base + c) for c in range(chats)))
    wall = time.perf_counter() - t0
    return {
        "latency": stats(latencies),
        "updates": len(latencies),
        "updates_per_s": len(latencies) / wall,
        "expected": expected,
    }


def check_stored(db: Path, expected: dict[int, list[int]]) -> dict[str, int]:
    """Each chat's stored inputs: each expected update once, in order, nothing else."""
    storage = Storage(db)
    try:
        rows = storage.db.execute(
            "SELECT c.chat_id, e.input_uid FROM events e JOIN conversations c"
            " ON c.id = e.conversation_id WHERE e.direction = 'in' ORDER BY c.id, e.seq"
        ).fetchall()
    finally:
        storage.close()
    stored: dict[int, list[int]] = {}
    for chat, uid in rows:
        stored.setdefault(int(chat), []).append(int(uid.split(":")[1]))
    bad = [c for c, want in expected.items() if stored.get(c, []) != want]
    if bad:
        c = bad[0]
        raise RuntimeError(f"chat {c}: stored {stored.get(c)} but sent {expected[c]}")
    return {"chats": len(expected), "inputs": sum(map(len, expected.values())), "wrong": 0}


def db_bytes(db: Path) -> int:
    storage = Storage(db)
    try:
        storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (
            storage.db.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
        finished = storage.db.execute(
            "SELECT count(*) FROM conversations WHERE status IN ('finished', 'cancelled')"
        ).fetchone()[0]
    finally:
        storage.close()
    return (pages - free) * size, finished


async def concurrent_both(size: Size, work: Path) -> dict[str, Any]:
    floor, project = await Floor.make(), await Project.make(work / "many.db")
    try:
        f = await concurrent(floor, size.chats)
        p = await concurrent(project, size.chats)
    finally:
        await floor.close()
        await project.close()
    checked = check_stored(work / "many.db", p.pop("expected"))
    f.pop("expected")
    used, finished = db_bytes(work / "many.db")
    return {
        "floor": f,
        "project": p,
        "stored_check": checked,
        "db_bytes": used,
        "finished_conversations": finished,
    }


async def limited(size: Size, work: Path) -> dict[str, float]:
    """Both under AIORateLimiter: `limiter_chats` chats, their first two inputs each."""
    out = {}
    for make in (Floor.make, lambda **kw: Project.make(work / "limited.db", **kw)):
        face = await make(limiter=True)
        try:
            ids = range(30_000_000, 30_000_000 + size.limiter_chats)
            t0 = time.perf_counter()
            for k in range(2):
                step = {"say": "/start"} if k == 0 else first_answer()
                await asyncio.gather(*(face.feed(face.update(c, step)) for c in ids))
            out[face.name] = 2 * size.limiter_chats / (time.perf_counter() - t0)
        finally:
            await face.close()
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def memory(size: Size, work: Path) -> dict[str, float]:
    """RSS added by `open_chats` conversations left open (each /start and one answer), scaled
    to 10,000."""
    project = await Project.make(work / "open.db")
    try:
        warm = range(40_000_000, 40_000_050)
        for step in ({"say": "/start"}, first_answer()):
            await asyncio.gather(*(project.feed(project.update(c, step)) for c in warm))
        before = rss_mb()
        ids = range(41_000_000, 41_000_000 + size.open_chats)
        for step in ({"say": "/start"}, first_answer()):
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                await asyncio.gather(*(project.feed(project.update(c, step)) for c in chunk))
        added = rss_mb() - before
    finally:
        await project.close()
    return {"opened": size.open_chats, "rss_added_mb": added,
            "rss_mb_10000_open": added * 10_000 / size.open_chats}  # fmt: skip


def fsync_s(work: Path, n: int = 20) -> float:
    """An fsync of a small write on the bench's disk (median of n): a commit's floor."""
    path, samples = work / "fsync.bin", []
    with open(path, "ab") as f:  # appended, as a WAL grows
        for _ in range(n):
            f.write(b"x" * 512)
            f.flush()
            t0 = time.perf_counter()
            os.fsync(f.fileno())
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def start_up(work: Path, runs: int) -> dict[str, float]:
    """Wall time of `subsidy-bot console` to its first question (stdin closed right away: it
    shows the question, then ends) and of `rules check` on one object."""
    env = {**os.environ, "SUBSIDY_DB": str(work / "console.db"), "SUBSIDY_LANG": "ja"}
    cmds = {
        "console_first_turn_s": ([sys.executable, "-m", "bot.cli", "console"], ""),
        "rules_check_s": (
            [sys.executable, "-m", "bot.cli", "rules", "check", "--date", ON.isoformat()],
            ANSWERS,
        ),
    }
    out = {}
    for key, (cmd, stdin) in cmds.items():
        samples = []
        subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=env)
            samples.append(time.perf_counter() - t0)
            if done.returncode != 0 or not done.stdout.strip():
                raise RuntimeError(f"{' '.join(cmd[2:])} failed: {done.stderr[-500:]}")
        out[key] = statistics.median(samples)
    out["python_start_s"] = statistics.median(
        _timed([sys.executable, "-c", "pass"]) for _ in range(runs)
    )
    return out


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


# --- the report --------------------------------------------------------------------------------


@dataclass
class Report:
    quick: bool
    results: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        r = self.results
        low, many = r["low_load"], r["concurrent"]
        fl, pr = low["floor"], low["project"]
        fsync_ms = low["fsync_ms"]["mean"]
        return {
            "quick": self.quick,
            "ratio_mean": pr["mean_ms"] / fl["mean_ms"],
            "ratio_mean_less_fsync": (pr["mean_ms"] - fsync_ms) / fl["mean_ms"],
            "ratio_p99": many["project"]["latency"]["p99_ms"] / many["floor"]["latency"]["p99_ms"],
            "ratio_p99_low_load": pr["p99_ms"] / fl["p99_ms"],
            "throughput_ratio": many["floor"]["updates_per_s"] / many["project"]["updates_per_s"],
            "limiter_ratio": r["limiter"]["project"] / r["limiter"]["floor"],
            "api_calls_per_update": low["api_calls_per_update"],
            "db_bytes_per_1000": many["db_bytes"] / max(many["finished_conversations"], 1) * 1000,
            "rss_mb_10000_open": r["memory"]["rss_mb_10000_open"],
            "console_first_turn_s": r["start_up"]["console_first_turn_s"],
            "rules_check_s": r["start_up"]["rules_check_s"],
            "fsync_ms": fsync_ms,
            "typed_share": low["typed_share"],
            "synchronous": "FULL",
        }

    def table(self) -> str:
        s, r = self.summary(), self.results
        low, many = r["low_load"], r["concurrent"]

        def pair(side: dict[str, float]) -> str:
            return f"{side['p50_ms']:.2f} / {side['p99_ms']:.2f}"

        rows = [
            ("mean per update, low load (ms)", low["floor"]["mean_ms"], low["project"]["mean_ms"],
             f"x{s['ratio_mean']:.2f} (less one fsync x{s['ratio_mean_less_fsync']:.2f})",
             "<= 2x + 1 fsync", s["ratio_mean_less_fsync"] <= 2),
            ("p50 / p99 low load (ms)", pair(low["floor"]), pair(low["project"]),
             f"x{s['ratio_p99_low_load']:.2f} (p99)", "", None),
            (f"updates/s, {r['size']['chats']} chats at once", many["floor"]["updates_per_s"],
             many["project"]["updates_per_s"], f"floor/project x{s['throughput_ratio']:.2f}",
             "<= 2", s["throughput_ratio"] <= 2),
            ("p99 latency, chats at once (ms)", many["floor"]["latency"]["p99_ms"],
             many["project"]["latency"]["p99_ms"], f"x{s['ratio_p99']:.2f}", "<= 10",
             s["ratio_p99"] <= 10),
            ("updates/s under AIORateLimiter", r["limiter"]["floor"], r["limiter"]["project"],
             f"project/floor {s['limiter_ratio']:.2f}", ">= 0.9", s["limiter_ratio"] >= 0.9),
            ("API calls per update", s["api_calls_per_update"]["floor"],
             s["api_calls_per_update"]["project"],
             f"x{s['api_calls_per_update']['project'] / s['api_calls_per_update']['floor']:.2f}",
             "<= 1.1", s["api_calls_per_update"]["project"]
             <= 1.1 * s["api_calls_per_update"]["floor"]),
            ("DB bytes per 1,000 finished", "", s["db_bytes_per_1000"] / 2**20, "MB",
             "<= 4 MB", s["db_bytes_per_1000"] <= 4 * 2**20),
            ("RSS added by 10,000 open (MB)", "", s["rss_mb_10000_open"], "", "<= 50",
             s["rss_mb_10000_open"] <= 50),
            ("console to first question (s)", r["start_up"]["python_start_s"],
             s["console_first_turn_s"], "floor: bare python", "<= 0.4",
             s["console_first_turn_s"] <= 0.4),
            ("rules check, one object (s)", r["start_up"]["python_start_s"], s["rules_check_s"],
             "floor: bare python", "<= 0.3", s["rules_check_s"] <= 0.3),
        ]  # fmt: skip

        def cell(v: Any) -> str:
            return f"{v:.2f}" if isinstance(v, float) else str(v)

        lines = [
            "| measure | floor | project | ratio | target | met |",
            "|---|---:|---:|---|---|---|",
        ]
        for name, f, p, ratio, target, met in rows:
            mark = "" if met is None else ("yes" if met else "NO")
            lines.append(f"| {name} | {cell(f)} | {cell(p)} | {ratio} | {target} | {mark} |")
        lines.append(
            f"\n{low['updates']} updates per bot at low load ({s['typed_share']:.0%} typed text,"
            f" the rest presses); {many['stored_check']['inputs']} inputs of"
            f" {many['stored_check']['chats']} chats stored once and in order; SQLite WAL,"
            f" synchronous=FULL; one fsync {s['fsync_ms']:.2f} ms. {r['machine']}"
        )
        return "\n".join(lines)


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    return f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}."


async def measure(size: Size, work: Path) -> dict[str, Any]:
    return {
        "low_load": await low_load(size, work),
        "concurrent": await concurrent_both(size, work),
        "limiter": await limited(size, work),
        "memory": await memory(size, work),
    }


def run(quick: bool) -> Report:
    size = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        results = asyncio.run(measure(size, work))
        results["start_up"] = start_up(work, size.starts)
    results["size"] = size.__dict__
    results["machine"] = machine()
    return Report(quick, results)


def write(report: Report, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "quick" if report.quick else "full"
    path = out / f"{stamp}-{kind}.json"
    path.write_text(
        json.dumps({"summary": report.summary(), **report.results}, indent=1, default=str)
    )
    (out / f"{stamp}-{kind}.md").write_text(report.table() + "\n")
    return path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small sizes: proves it runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object (summary)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="where the JSON and table go (default bench/results)",
    )


def main(args: argparse.Namespace) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    report = run(args.quick)
    path = write(report, args.out)
    if args.json:
        print(json.dumps(report.summary()))
    else:
        print(report.table())
        print(f"\nwritten: {path}")
    return 0
