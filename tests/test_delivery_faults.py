"""The delivery core's retry policy in the real bot process against the Bot API emulator:
an ambiguous failure (the message sent, the answer lost) is not retried in the tight loop, so
a reply reaches the user at most once per lost answer more; a SIGTERM while sending fails stops
the process promptly with the unsent replies kept for the next start."""

from __future__ import annotations

import signal

import pytest

try:  # tests/ is not a package: importable either way
    from tests.e2e.botproc import BotProcess, Chat, query, wait_done
    from tests.emulator import BotApiEmulator
except ImportError:
    from e2e.botproc import BotProcess, Chat, query, wait_done
    from emulator import BotApiEmulator

from bot.retry import SEND_ATTEMPTS

STOP_S = 5  # the bound on stopping, whatever the API does


@pytest.fixture
def emu():
    with BotApiEmulator() as emulator:
        yield emulator


def rows(db, chat: Chat) -> list[tuple]:
    sql = "SELECT status, attempts FROM outbox WHERE chat_id = ? ORDER BY id"
    return query(db, sql, str(chat.id))


@pytest.mark.parametrize("lost", [1, 2])
def test_a_reply_is_seen_at_most_once_per_lost_answer_more(emu, tmp_path, lost):
    db = tmp_path / "bot.db"
    chat = Chat(emu, 41)
    with BotProcess(emu, tmp_path, db):
        chat.say("/start")
        emu.drop_next("sendMessage", times=lost, after=True)  # sent, the answer lost
        before = len(chat.messages)
        update_id = emu.send_text(chat.id, "1")
        copies = emu.wait_for_bot_messages(chat.id, before + 1 + lost, 20)[before:]
        wait_done(db, chat.id, update_id, 20)
        assert len(chat.messages) == before + 1 + lost  # nothing more once noted as sent
    assert len({m["text"] for m in copies}) == 1 and "主な業種" in copies[0]["text"]
    # one post per lost answer, then noted as sent: the outbox row is gone
    assert rows(db, chat) == []


def test_a_5xx_is_retried_in_the_loop_and_sends_once(emu, tmp_path):
    db = tmp_path / "bot.db"
    chat = Chat(emu, 42)
    with BotProcess(emu, tmp_path, db):
        chat.say("/start")
        emu.fail_next("sendMessage", status=502, times=SEND_ATTEMPTS - 1)
        [reply] = chat.say("1")
        wait_done(db, chat.id, chat.last_update)
    assert "主な業種" in reply["text"]
    assert rows(db, chat) == []  # sent: the outbox row is gone


def test_sigterm_while_sends_fail_stops_promptly_and_keeps_the_unsent(emu, tmp_path):
    db = tmp_path / "bot.db"
    chat = Chat(emu, 43)
    bot = BotProcess(emu, tmp_path, db).start()
    chat.say("/start")
    emu.fail_next("sendMessage", status=500, times=1000)  # the API fails every send
    for text in ("1", "2", "3"):  # queued behind each other in the chat
        emu.send_text(chat.id, text)
    emu.wait_until(lambda: len(emu.calls_to("sendMessage")) >= 3, 10)  # retrying now
    try:
        assert bot.stop(signal.SIGTERM, timeout=STOP_S) == 0, bot.output
    finally:
        bot.kill()
    emu.clear_faults()
    unsent = [r for r in rows(db, chat) if r[0] == "pending"]
    assert unsent, bot.output  # left in the outbox, not given up
    before = len(chat.messages)
    with BotProcess(emu, tmp_path, db):  # the next start sends them, in order
        emu.wait_until(lambda: rows(db, chat) == [], 20)  # all sent: the rows are gone
    assert len(chat.messages) > before
    assert len(query(db, "SELECT 1 FROM inputs WHERE chat_id = ?", str(chat.id))) == 4
