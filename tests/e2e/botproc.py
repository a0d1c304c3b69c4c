"""The real bot (`python -m bot.cli run`) as a subprocess against the Bot API emulator, and a
user chatting with it through the emulator.

Processes run in their own directory (no stray .env or data/ from the checkout) with a short
long-poll timeout; their stdout and stderr are collected for assertions about logs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

EVAL_DATE = "2024-06-01"  # the scenario files' date: verdicts do not move with the calendar
READY_TIMEOUT = 20
ROOT = Path(__file__).resolve().parents[2]
OURS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_URL",
    "TELEGRAM_WEBHOOK_SECRET",
    "ADMIN_USER_IDS",
    "SUBSIDY_DB",
    "SUBSIDY_LANG",
    "LOG_LEVEL",
    "LINE_CHANNEL_SECRET",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "LINE_API_URL",
    "LINE_ADMIN_USER_IDS",
)  # from the test, never from the caller


class BotProcess:
    def __init__(self, emu, workdir: Path, db: Path, *args: str, **env: str | None) -> None:
        """`emu` None: a process that must not get as far as the Bot API. An env value of
        None unsets that variable."""
        self.emu, self.workdir, self.db, self.args = emu, workdir, db, args
        base = {"TELEGRAM_BOT_TOKEN": emu.token, "TELEGRAM_API_URL": emu.api_url} if emu else {}
        self.env = base | {"SUBSIDY_DB": str(db), "SUBSIDY_LANG": "ja", "LOG_LEVEL": "INFO"} | env
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--poll-timeout",
            "1",
            "--date",
            EVAL_DATE,
            *self.args,
        ]

    def start(self, ready: str | None = "getUpdates") -> BotProcess:
        """Start; unless `ready` is None, wait until the bot calls that method (polling)."""
        before = len(self.emu.calls_to(ready)) if ready else 0
        env = {k: v for k, v in os.environ.items() if k not in OURS}
        env.update((k, v) for k, v in self.env.items() if v is not None)
        paths = [str(ROOT), os.environ.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        self.lines = []
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            env=env,
            text=True,
            encoding="utf-8",
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if ready:
            try:
                self.emu.wait_until(
                    lambda: self.proc.poll() is not None or len(self.emu.calls_to(ready)) > before,
                    READY_TIMEOUT,
                )
            except TimeoutError:
                raise TimeoutError(f"bot not ready:\n{self.output}") from None
            assert self.proc.poll() is None, f"bot exited:\n{self.output}"
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(5)  # the pipe ends with the process: all output is in
        return code

    def kill(self) -> int:
        return self.stop(signal.SIGKILL)

    def __enter__(self) -> BotProcess:
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Chat:
    """One user in a private chat (chat id = user id). `say` and `press` wait for exactly the
    number of bot messages the step should bring, and check that at most one keyboard is live."""

    def __init__(self, emu, chat_id: int) -> None:
        self.emu, self.id = emu, chat_id
        self.last_update: int | None = None

    @property
    def messages(self) -> list[dict]:
        return self.emu.bot_messages(self.id)

    def keyboards(self) -> list[dict]:
        return [m for m in self.messages if (m["reply_markup"] or {}).get("inline_keyboard")]

    def keyboard(self) -> dict:
        live = [m for m in self.keyboards() if not self._adapter(m)]
        assert len(live) == 1, f"expected one live keyboard, got {len(live)}"
        return live[0]

    def buttons(self, message: dict | None = None) -> dict[str, str]:
        """label -> callback data of a message's keyboard (default: the live one)."""
        rows = (message or self.keyboard())["reply_markup"]["inline_keyboard"]
        return {b["text"]: b["callback_data"] for row in rows for b in row}

    def _wait(self, before: int, replies: int, timeout: float) -> list[dict]:
        got = self.emu.wait_for_bot_messages(self.id, before + replies, timeout)
        dialog = [m for m in self.keyboards() if not self._adapter(m)]
        assert len(dialog) <= 1, "more than one live dialog keyboard"
        return got[before:]

    def _adapter(self, message: dict) -> bool:
        """An adapter's own keyboard (the /delete confirmation), beside the dialog's."""
        return all(d.startswith("tg:") for d in self.buttons(message).values())

    def say(self, text: str, replies: int = 1, timeout: float = 10) -> list[dict]:
        before = len(self.messages)
        self.last_update = self.emu.send_text(self.id, text)
        return self._wait(before, replies, timeout)

    def press(self, label: str, replies: int = 1, timeout: float = 10) -> list[dict]:
        """Press the live keyboard's button with this label (or callback data)."""
        message = self.keyboard()
        buttons = self.buttons(message)
        data = buttons.get(label) or (label if label in buttons.values() else None)
        assert data, f"no button {label!r} in {list(buttons)}"
        before = len(self.messages)
        self.last_update = self.emu.press(self.id, message["message_id"], data)
        return self._wait(before, replies, timeout)


def query(db: Path, sql: str, *params) -> list[tuple]:
    """Read the bot's database from outside (read-only; WAL lets it run beside the bot)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_done(db: Path, chat_id: int, update_id: int, timeout: float = 10) -> None:
    """Until the bot has noted the update as sent (its last step, after the replies): nothing
    of that update is left in flight. The database has no events to wait on: poll it."""
    deadline = time.monotonic() + timeout
    sql = (
        "SELECT (SELECT count(*) FROM inputs WHERE channel = 'telegram' AND chat_id = ?1"
        " AND uid LIKE '%:' || ?2) - (SELECT count(*) FROM outbox WHERE channel = 'telegram'"
        " AND chat_id = ?1 AND status = 'pending')"
    )
    while query(db, sql, str(chat_id), update_id) != [(1,)]:
        assert time.monotonic() < deadline, f"update {update_id} not done in {timeout}s"
        time.sleep(0.01)
