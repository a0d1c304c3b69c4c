"""The real bot process under the faults of issue 13 (items 6, 7, 8, and the health endpoint):
a second process for the same bot, an outage while starting, oversized or unauthenticated
webhook bodies. Against the Bot API emulator on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

try:  # tests/ is not a package: importable either way
    from tests.e2e.botproc import BotProcess, Chat, query
    from tests.emulator import BotApiEmulator
except ImportError:
    from e2e.botproc import BotProcess, Chat, query
    from emulator import BotApiEmulator

from bot.telegram.webhook import HEALTH_PATH, MAX_BODY
from locales import t

NOTICE = t("robustness.flood.wait", "ja")


@pytest.fixture
def emu():
    with BotApiEmulator() as emulator:
        yield emulator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(second: BotProcess) -> list[str]:
    """Start a second process; it must exit with status 1. Its output lines."""
    second.start(ready=None)
    try:
        assert second.proc.wait(30) == 1
    finally:
        second.kill()  # never left behind
    return second.output.strip().splitlines()


def test_a_second_process_for_the_same_bot_refuses_to_start(emu, tmp_path):
    db = tmp_path / "bot.db"
    with BotProcess(emu, tmp_path, db) as first:
        second = BotProcess(emu, tmp_path, db, SUBSIDY_LANG="en")
        lines = refused(second)
        assert len(lines) == 1, second.output
        bot_id = emu.token.partition(":")[0]
        lock = db.with_name(f"bot.db.telegram-{bot_id}.lock")
        assert lines[0].endswith(t("robustness.lock.busy", "en", pid=first.proc.pid, path=lock)), (
            lines[0]
        )
        assert Chat(emu, 5).say("/start")  # the first one still answers, once
        time.sleep(0.5)
        assert len(emu.bot_messages(5)) == 1
    with BotProcess(emu, tmp_path, db):  # the first one gone (lock released): starts again
        assert Chat(emu, 6).say("/start")


def test_a_502_or_dropped_connection_while_starting_is_retried(emu, tmp_path):
    emu.fail_next("getMe", status=502)
    emu.drop_next("getMe")
    emu.drop_next("deleteWebhook")
    emu.fail_next("deleteWebhook", status=503)
    with BotProcess(emu, tmp_path, tmp_path / "bot.db") as process:
        assert "事業者の種類" in Chat(emu, 7).say("/start")[0]["text"]
    assert len(emu.calls_to("getMe")) >= 3 and len(emu.calls_to("deleteWebhook")) >= 3
    assert "retrying" in process.output and "Traceback" not in process.output


def _raw(port: int, head: str, body: bytes = b"", timeout: float = 5) -> bytes:
    """Send the headers and a little of the body only; read what the server says meanwhile."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        try:
            return s.recv(4096)
        except TimeoutError:
            return b""


@pytest.fixture
def hooked(emu, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    process = BotProcess(
        emu, tmp_path, tmp_path / "bot.db", "--webhook", url, "--port", str(port),
        TELEGRAM_WEBHOOK_SECRET="s3cret",
    )  # fmt: skip
    with process.start(ready="setWebhook"):
        deadline = time.monotonic() + 10
        while True:  # listening before setWebhook; the health check proves it
            try:
                httpx.get(f"http://127.0.0.1:{port}{HEALTH_PATH}")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield port


def test_webhook_refuses_big_or_unauthenticated_bodies_on_their_headers(hooked):
    port, huge = hooked, 90 * 1024 * 1024

    def post(secret: str | None, length: int) -> bytes:
        """Announce `length` bytes, send 1 KB: the answer must come without the rest."""
        head = "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        if secret is not None:
            head += f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\n"
        return _raw(port, head + f"Content-Length: {length}\r\n\r\n", b"{" * 1024)

    assert post("nope", huge).startswith(b"HTTP/1.1 403")
    assert post(None, huge).startswith(b"HTTP/1.1 403")
    assert post("s3cret", MAX_BODY + 1).startswith(b"HTTP/1.1 413")
    health = httpx.get(f"http://127.0.0.1:{port}{HEALTH_PATH}")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_a_flooding_chat_holds_nobody_and_loses_nothing_silently(emu, tmp_path):
    """Issue 13, item 1. The flooder's replies are slow (Telegram paces a chat); another chat
    must be answered while the flooder's replies are still going out, not after them. The
    flood is stored in order up to the per-chat bound; the rest is refused with one notice."""
    db = tmp_path / "bot.db"
    flooder, other, n = Chat(emu, 900), Chat(emu, 901), 60
    with BotProcess(emu, tmp_path, db):
        flooder.say("/start")
        emu.slow_chat(flooder.id, 0.5)
        for i in range(n):
            emu.send_text(flooder.id, f"flood-{i}")
        other.say("/start")  # waits for its one reply
        answered = [m for m in flooder.messages[1:] if m["text"] != NOTICE]
        assert len(answered) < 3, "the other chat waited for the flooder's replies"
        emu.wait_until(lambda: not emu.pending_update_count, 30)
        stored = lambda: [  # noqa: E731
            int(text.removeprefix("flood-"))
            for (text,) in query(db, "SELECT raw_text FROM events WHERE direction = 'in'")
            if text.startswith("flood-")
        ]
        emu.wait_until(lambda: emu.bot_messages(flooder.id) and stored(), 30)
        assert other.say("1")  # still answered at once
    kept = stored()
    assert kept == sorted(kept) and kept[0] == 0, kept  # in order, from the first
    notices = [m for m in emu.bot_messages(flooder.id) if m["text"] == NOTICE]
    assert len(kept) < n and len(notices) == 1  # the rest refused, told once for the burst


def test_a_refused_input_redelivered_after_a_crash_is_not_read_out_of_order(tmp_path):
    """Refused during a flood, then the process died before Telegram heard of it: the update
    comes again after later ones were stored. It must not be read then (found by the
    campaign: the flood stored out of order)."""
    from bot.delivery import Channel, Delivery, Inbound
    from bot.storage import Storage
    from dialogs.engine import step
    from dialogs.io import UserInput

    class Shown(Channel):
        name, outbox = "telegram", False

    with Storage(tmp_path / "bot.db") as storage:
        delivery = Delivery(storage, Shown(), step)

        def inbound(n: int, text: str) -> Inbound:
            return Inbound("7", "7", f"1:{n}", f"m:{n}", UserInput(text=text))

        delivery.commit(inbound(1, "/start"))
        delivery.refuse(inbound(2, ""))
        delivery.commit(inbound(3, "会社"))
        assert delivery.commit(inbound(2, "医療法人")).status == "duplicate"
        sql = "SELECT raw_text FROM events WHERE direction = 'in'"
        assert [r[0] for r in storage.db.execute(sql)] == ["/start", "会社"]


def test_a_second_line_process_for_the_same_channel_refuses_to_start(tmp_path):
    """Item 7 for LINE: the same lock, named for the channel (a hash of its token)."""
    try:
        from tests.e2e.lineproc import LineProcess
        from tests.line_emulator import LineEmulator
    except ImportError:
        from e2e.lineproc import LineProcess
        from line_emulator import LineEmulator

    db = tmp_path / "bot.db"
    with LineEmulator() as line, LineProcess(line, tmp_path, db) as first:
        second = LineProcess(line, tmp_path, db, SUBSIDY_LANG="en")
        lines = refused(second)
        line.webhook_url = first.url  # the second one pointed the emulator at itself
        assert len(lines) == 1 and f"(process {first.proc.pid}, lock " in lines[0], lines
        assert line.access_token not in second.output
