"""The real LINE bot (`python -m bot.cli line`) as a subprocess against the LINE emulator, and a
LINE user talking to it through the emulator (signed webhook calls in, reply/push out)."""

from __future__ import annotations

import socket
import sys
import time

from .botproc import EVAL_DATE, READY_TIMEOUT, BotProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LineProcess(BotProcess):
    """`subsidy-bot line` on a free port of 127.0.0.1; `emu.webhook_url` is pointed at it."""

    def __init__(self, emu, workdir, db, *args: str, port: int | None = None, **env) -> None:
        super().__init__(None, workdir, db, *args, **env)
        self.emu, self.port = emu, port or free_port()
        base = {
            "LINE_CHANNEL_SECRET": emu.channel_secret,
            "LINE_CHANNEL_ACCESS_TOKEN": emu.access_token,
            "LINE_API_URL": emu.api_url,
        }
        self.env = base | self.env
        self.url = f"http://127.0.0.1:{self.port}/callback"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bot.cli",
            "line",
            "--port",
            str(self.port),
            "--date",
            EVAL_DATE,
            *self.args,
        ]

    def start(self, ready: str | None = "port") -> LineProcess:
        """Start; unless `ready` is None, wait until the webhook port accepts connections."""
        super().start(ready=None)
        self.emu.webhook_url = self.url
        if ready:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:  # nothing to wait on but the port opening: a short poll
                assert self.proc.poll() is None, f"bot exited:\n{self.output}"
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"bot not listening:\n{self.output}"
                    time.sleep(0.02)
        return self


class LineUser:
    """One LINE user. `say`, `tap` and `follow` check the webhook answered 200 and wait for
    exactly the number of messages the step should bring."""

    def __init__(self, emu, user_id: str | None = None) -> None:
        self.emu = emu
        self.id = user_id or emu.new_user_id()
        self.last_event: dict | None = None

    @property
    def messages(self) -> list[dict]:
        return self.emu.messages(self.id)

    def quick(self) -> dict[str, dict]:
        """label -> action of the last message's quick reply (also by displayText)."""
        items = (self.messages[-1].get("quickReply") or {}).get("items", [])
        actions = {i["action"]["label"]: i["action"] for i in items}
        return actions | {a["displayText"]: a for a in actions.values() if a.get("displayText")}

    def _wait(self, before: int, count: int, timeout: float) -> list[dict]:
        return self.emu.wait_for_messages(self.id, before + count, timeout)[before:]

    def say(self, text: str, count: int = 1, timeout: float = 10) -> list[dict]:
        before = len(self.messages)
        status, self.last_event = self.emu.send_text(self.id, text)
        assert status == 200, status
        return self._wait(before, count, timeout)

    def tap(self, label: str, count: int = 1, timeout: float = 10) -> list[dict]:
        """Tap the quick reply item with this label (or displayText): a postback, or the
        message a message action sends."""
        actions = self.quick()
        assert label in actions, f"no quick reply {label!r} in {list(actions)}"
        action = actions[label]
        if action["type"] == "message":
            return self.say(action["text"], count, timeout)
        before = len(self.messages)
        status, self.last_event = self.emu.postback(self.id, action["data"])
        assert status == 200, status
        return self._wait(before, count, timeout)

    def follow(self, count: int = 1, timeout: float = 10) -> list[dict]:
        before = len(self.messages)
        status, self.last_event = self.emu.follow(self.id)
        assert status == 200, status
        return self._wait(before, count, timeout)
