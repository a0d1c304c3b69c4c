"""The real bot process against the Bot API emulator over HTTP on 127.0.0.1.

Most tests share one bot process (module scope), each in its own chat; restarts, logs, bad
tokens and the webhook start their own processes. Every wait is on an observable event (a bot
message, a callback answer, an API call), never a fixed sleep; where there is no event (the
webhook port opening, a mark in the database) a short poll with a deadline."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sqlite3
import time

import httpx
import pytest

try:  # tests/ is not a package: importable either way
    from tests.e2e.botproc import BotProcess, Chat, query, wait_done
    from tests.e2e.scripts import BY_BUTTONS, BY_TEXT, TITLES, YES
    from tests.emulator import BotApiEmulator
except ImportError:
    from e2e.botproc import BotProcess, Chat, query, wait_done
    from e2e.scripts import BY_BUTTONS, BY_TEXT, TITLES, YES
    from emulator import BotApiEmulator

from bot.retry import SEND_ATTEMPTS
from locales import t

ADMIN = 5550


@pytest.fixture(scope="module")
def emu():
    with BotApiEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture(scope="module")
def bot(emu, tmp_path_factory):
    work = tmp_path_factory.mktemp("bot")
    process = BotProcess(emu, work, work / "bot.db", ADMIN_USER_IDS=str(ADMIN))
    with process:
        yield process
    assert process.proc.returncode == 0, process.output


_chat_ids = itertools.count(1001)


@pytest.fixture
def chat(emu, bot):
    """A fresh user of the shared bot, who has sent /start."""
    c = Chat(emu, next(_chat_ids))
    c.say("/start")
    return c


def events(db, chat_id: int) -> list[tuple]:
    return query(
        db,
        "SELECT e.direction, e.raw_text, e.input_uid FROM events e JOIN"
        " conversations c ON c.id = e.conversation_id WHERE c.chat_id = ?"
        " ORDER BY e.id",
        str(chat_id),
    )


def verdict(db, chat_id: int) -> tuple:
    return query(
        db,
        "SELECT count(*), max(status), max(verdict_status) FROM conversations WHERE chat_id = ?",
        str(chat_id),
    )[0]


# --- the dialog ---------------------------------------------------------------------------


def test_start_sets_the_command_menu_in_each_language(emu, bot):
    menus = emu.commands
    assert set(menus) == {"", "ja", "en"}
    ja = {c["command"]: c["description"] for c in menus["ja"]}
    assert ja["privacy"] == t("telegram.commands.privacy", "ja")
    assert {c["command"] for c in menus["en"]} == set(ja) >= {"start", "delete", "summary"}
    assert menus[""] == menus["ja"]  # the default follows SUBSIDY_LANG (ja)


@pytest.mark.parametrize("outcome", BY_BUTTONS)
def test_whole_dialog_by_buttons(bot, chat, outcome):
    for action, value, replies in BY_BUTTONS[outcome]:
        got = getattr(chat, action)(value, replies)
    assert got[-1]["text"].startswith(TITLES[outcome])
    assert set(chat.buttons()) == {"チェックリスト", "県に相談", "回答確認", "最初から"}
    assert verdict(bot.db, chat.id) == (1, "finished", outcome)
    [reference] = query(bot.db, "SELECT reference FROM conversations WHERE chat_id = ?", chat.id)[0]
    assert f"受付番号: {reference}" in got[-1]["text"]


def test_checklist_comes_as_a_pdf_document_and_contact_as_text(emu, bot, chat):
    for action, value, replies in BY_BUTTONS["eligible"]:
        getattr(chat, action)(value, replies)
    [reference] = query(bot.db, "SELECT reference FROM conversations WHERE chat_id = ?", chat.id)[0]
    ready, document = chat.press("チェックリスト", 2)
    assert ready["text"] == t("takeaway.checklist.ready", "ja")
    assert document["document"]["file_name"] == f"checklist-{reference}.pdf"
    assert document["document"]["bytes"].startswith(b"%PDF-")
    assert reference in document["text"]  # the caption
    assert set(chat.buttons()) == {"チェックリスト", "県に相談", "回答確認", "最初から"}
    contact, _ = chat.press("県に相談", 2)
    assert "気候変動対策課" in contact["text"] and reference in contact["text"]
    assert [c["chat_id"] for c in emu.calls_to("sendDocument")].count(chat.id) == 1


@pytest.mark.parametrize("outcome", BY_TEXT)
def test_whole_dialog_by_typed_text(bot, chat, outcome):
    script = BY_TEXT[outcome]
    for n, text in enumerate(script, 1):
        got = chat.say(text, 2 if n == len(script) else 1)
    assert got[-1]["text"].startswith(TITLES[outcome])
    assert verdict(bot.db, chat.id) == (1, "finished", outcome)


def test_an_old_keyboard_pressed_or_typed_past_never_changes_an_answer(emu, bot, chat):
    first = chat.keyboard()
    chat.press("会社（株式会社・有限会社・合同会社など）")
    second = chat.keyboard()
    assert second["message_id"] != first["message_id"]
    chat.say("製造業")  # typed instead of pressed: that keyboard is old too
    assert chat.keyboard()["message_id"] == chat.messages[-1]["message_id"]
    before = events(bot.db, chat.id)
    for old in (first, second):  # no second API call strips them; pressed, they are stale
        answers = len(emu.callback_answers)
        label, data = next(iter(chat.buttons(old).items()))
        emu.press(chat.id, old["message_id"], data)
        [answer] = emu.wait_until(lambda a=answers: emu.callback_answers[a:], 10)
        assert answer["text"] == t("telegram.stale_button", "ja"), label
    assert events(bot.db, chat.id) == before


def test_stale_button_is_answered_and_changes_nothing(emu, bot, chat):
    old = chat.keyboard()
    chat.press("会社（株式会社・有限会社・合同会社など）")
    before_events, before_messages = events(bot.db, chat.id), len(chat.messages)
    answers = len(emu.callback_answers)
    emu.press(chat.id, old["message_id"], "entity_type:sole_proprietor")
    [answer] = emu.wait_until(lambda: emu.callback_answers[answers:], 10)
    assert answer["text"] == t("telegram.stale_button", "ja")
    assert chat.say("製造業")[0]["text"].startswith("業種は「製造業」")  # still the same question
    assert events(bot.db, chat.id)[: len(before_events)] == before_events
    assert len(events(bot.db, chat.id)) == len(before_events) + 2  # just the "製造業" turn
    assert len(chat.messages) == before_messages + 1


def test_start_midway_offers_to_continue_or_start_over(chat):
    chat.press("会社（株式会社・有限会社・合同会社など）")
    [offer] = chat.say("/start")
    assert set(chat.buttons()) == {"続ける", "最初から"}
    assert "回答済み 1問" in offer["text"]
    resumed, again = chat.press("続ける", 2)
    assert resumed["text"].startswith(t("dialog.resumed", "ja")) and "主な業種" in again["text"]
    assert "・事業者の種類: 会社" in resumed["text"]  # the answers so far


def test_user_text_is_escaped_and_very_long_input_refused(bot, chat):
    [reask] = chat.say("<script>alert(1)</script> & x")  # HTML-looking text: sent escaped, accepted
    assert reask["parse_mode"] == "HTML" and "選択肢から選んでください" in reask["text"]
    before = events(bot.db, chat.id)
    [refused] = chat.say("あ" * 1001)
    assert refused["text"] == t("telegram.too_long", "ja", max=1000)
    assert events(bot.db, chat.id) == before  # never reached the dialog


def test_pictures_and_stickers_get_a_polite_word(emu, bot, chat):
    before = events(bot.db, chat.id)
    emu.inject(
        {
            "message": {
                "message_id": 99,
                "date": int(time.time()),
                "chat": {"id": chat.id, "type": "private", "first_name": "T"},
                "from": {"id": chat.id, "is_bot": False, "first_name": "T"},
                "sticker": {
                    "file_id": "s",
                    "file_unique_id": "s",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                },
            }
        }
    )
    emu.wait_for_bot_messages(chat.id, 2)
    assert chat.messages[-1]["text"] == t("telegram.text_only", "ja")
    assert events(bot.db, chat.id) == before


def test_privacy_says_what_is_stored(bot, emu):
    c = Chat(emu, next(_chat_ids))
    [text] = c.say("/privacy")
    assert text["text"] == t("telegram.privacy", "ja")
    assert verdict(bot.db, c.id)[0] == 0  # not a conversation


def test_delete_asks_first_then_erases(emu, bot, chat):
    chat.press("会社（株式会社・有限会社・合同会社など）")
    question = chat.keyboard()
    [confirm] = chat.say("/delete")
    assert set(chat.buttons(confirm).values()) == {"tg:delete:yes", "tg:delete:no"}
    answers = len(emu.callback_answers)
    emu.press(chat.id, confirm["message_id"], "tg:delete:no")
    emu.wait_until(
        lambda: (
            len(emu.callback_answers) > answers
            and chat.messages[-1]["text"] == t("telegram.delete.kept", "ja")
        ),
        10,
    )
    assert verdict(bot.db, chat.id)[0] == 1  # kept

    [confirm] = chat.say("/delete")
    emu.press(chat.id, confirm["message_id"], "tg:delete:yes")
    done = t("telegram.delete.done", "ja", conversations=1)
    emu.wait_until(lambda: chat.messages[-1]["text"] == done, 10)
    assert verdict(bot.db, chat.id)[0] == 0 and events(bot.db, chat.id) == []
    for table in ("chats", "outbox"):  # the marks and the outbox go with the conversation
        sql = f"SELECT count(*) FROM {table} WHERE chat_id = ?"
        assert query(bot.db, sql, str(chat.id)) == [(0,)]
    assert not chat.keyboards(), "the dialog's keyboard went with the data"
    answers = len(emu.callback_answers)
    emu.press(chat.id, question["message_id"], "industry:retail")  # a button from before
    emu.wait_until(lambda: emu.callback_answers[answers:], 10)
    assert verdict(bot.db, chat.id)[0] == 0
    assert "こんにちは" in chat.say("/start")[0]["text"]  # a fresh start


def test_admin_commands_exist_for_admins_only(emu, bot):
    stranger, other = Chat(emu, next(_chat_ids)), Chat(emu, next(_chat_ids))
    stranger.say("/start")
    other.say("/start")
    [to_stats] = stranger.say("/stats")
    [to_unknown] = other.say("/nosuchcommand")
    assert to_stats["text"] == to_unknown["text"]  # exactly like any unknown command
    assert to_stats["reply_markup"] == to_unknown["reply_markup"]
    assert "/stats" in [e[1] for e in events(bot.db, stranger.id)]  # it went to the dialog

    admin = Chat(emu, ADMIN)
    [stats] = admin.say("/stats")
    assert stats["text"].startswith("<pre>") and "会話の数" in stats["text"]
    [recent] = admin.say("/recent")
    assert recent["text"].startswith("<pre>")
    cid = query(bot.db, "SELECT id FROM conversations WHERE chat_id = ?", str(stranger.id))[0][0]
    [shown] = admin.say(f"/show {cid}")
    assert f"#{cid}" in shown["text"] and "/stats" in shown["text"]
    [ref] = query(bot.db, "SELECT reference FROM conversations WHERE id = ?", cid)[0]
    assert admin.say(f"/show {ref.lower()}")[0]["text"] == shown["text"]  # as read out
    assert (
        admin.say("/show 999999")[0]["text"]
        == f"<pre>{t('admin.show.not_found', 'ja', id=999999)}</pre>"
    )
    assert admin.say("/show")[0]["text"] == t("telegram.admin.show_usage", "ja")
    # odd arguments get the usage or "not found", never an error (issue 13, item 13)
    huge = "99999999999999999999999"
    assert admin.say(f"/show {huge}")[0]["text"] == (
        f"<pre>{t('admin.show.not_found', 'ja', id=int(huge))}</pre>"
    )
    assert admin.say("/show ²")[0]["text"] == t("telegram.admin.show_usage", "ja")
    assert admin.say("/recent ²")[0]["text"] == recent["text"]  # the default listing
    assert verdict(bot.db, ADMIN)[0] == 0  # none of that was a dialog input


# --- delivery -----------------------------------------------------------------------------


def test_redelivered_update_changes_nothing(emu, bot, chat):
    chat.say("1")
    uid = chat.last_update
    before = events(bot.db, chat.id)
    emu.redeliver(uid)
    [reply] = chat.say("製造業")  # processed after the redelivered copy (same chat, in order)
    assert reply["text"].startswith("業種は「製造業」")
    after = events(bot.db, chat.id)
    assert after[: len(before)] == before and len(after) == len(before) + 2
    assert [e for e in after if e[2].endswith(f":{uid}") and e[0] == "in"] == [
        ("in", "1", f"123456789:{uid}")
    ]
    assert len(chat.messages) == 3  # welcome, industry question, capital question


def test_429_on_send_waits_and_loses_nothing(emu, chat):
    emu.fail_next("sendMessage", status=429, retry_after=1)
    started = time.monotonic()
    [reply] = chat.say("1")
    assert time.monotonic() - started >= 1.0
    assert "主な業種" in reply["text"]
    attempts = [c for c in emu.calls_to("sendMessage") if c["chat_id"] == chat.id]
    assert attempts[-2]["text"] == attempts[-1]["text"]


def test_5xx_on_send_is_retried(emu, chat):
    emu.fail_next("sendMessage", status=502, times=2)
    [reply] = chat.say("1")
    assert "主な業種" in reply["text"]
    attempts = [c for c in emu.calls_to("sendMessage") if c["chat_id"] == chat.id]
    assert len({c["text"] for c in attempts[-3:]}) == 1


def test_answer_is_kept_when_sending_fails_for_good_and_retried_soon(emu, bot, chat):
    emu.fail_next("sendMessage", status=500, times=SEND_ATTEMPTS)  # every attempt fails
    before = len(chat.messages)
    emu.send_text(chat.id, "1")
    # no new input, no minute's wait: the chat's early retry (RETRY_S) sends it
    [unsent] = emu.wait_for_bot_messages(chat.id, before + 1, 15)[before:]
    assert "主な業種" in unsent["text"]
    [reply] = chat.say("製造業")
    assert reply["text"].startswith("業種は「製造業」")
    assert verdict(bot.db, chat.id)[0] == 1
    assert all(m["text"] != t("telegram.error", "ja") for m in chat.messages)  # never "again"


def test_two_chats_each_keep_their_order_and_do_not_wait_for_each_other(emu, bot):
    a, b = Chat(emu, next(_chat_ids)), Chat(emu, next(_chat_ids))
    for text_a, text_b in [("/start", "/start"), ("1", "2"), ("1", "はい")]:
        emu.send_text(a.id, text_a)
        emu.send_text(b.id, text_b)
    got_a = emu.wait_for_bot_messages(a.id, 3)
    got_b = emu.wait_for_bot_messages(b.id, 3)
    assert [
        "事業者の種類を" in got_a[0]["text"],
        "主な業種" in got_a[1]["text"],
        "資本金" in got_a[2]["text"],
    ] == [True] * 3
    assert [
        "事業者の種類を" in got_b[0]["text"],
        "青色申告" in got_b[1]["text"],
        "県税" in got_b[2]["text"],
    ] == [True] * 3

    # Chat a's reply fails once and waits 0.5 s to retry; chat b is answered meanwhile.
    emu.fail_next("sendMessage", status=502)
    calls = len(emu.calls_to("sendMessage"))
    emu.send_text(a.id, "3億円")
    emu.wait_until(lambda: len(emu.calls_to("sendMessage")) > calls, 10)
    b.say("いいえ")
    assert len(a.messages) == 3, "chat a was still backing off"
    emu.wait_for_bot_messages(a.id, 4)


# --- processes (each with an emulator of its own: two bots on one would steal updates) ----


@pytest.fixture
def own_emu():
    with BotApiEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


def test_stopped_or_killed_bot_resumes_the_conversation(own_emu, tmp_path):
    emu, db = own_emu, tmp_path / "bot.db"
    c = Chat(emu, 7001)
    with BotProcess(emu, tmp_path, db) as first:
        c.say("/start")
        c.press("会社（株式会社・有限会社・合同会社など）")
        c.say("製造業")
    assert first.proc.returncode == 0  # SIGTERM: a clean stop

    emu.send_text(c.id, "３億円")  # while no bot runs: answered once one starts again
    second = BotProcess(emu, tmp_path, db).start()
    assert "300,000,000円" in emu.wait_for_bot_messages(c.id, 4)[3]["text"]
    c.say("ありません")
    wait_done(db, c.id, c.last_update)
    second.kill()  # no clean stop at all

    # A crash after the commit, before the reply went out: a redelivered update sends it.
    third = BotProcess(emu, tmp_path, db).start()
    emu.fail_next("sendMessage", status=502, times=2)
    calls = len(emu.calls_to("sendMessage"))
    lost = emu.send_text(c.id, "該当しません")
    emu.wait_until(lambda: len(emu.calls_to("sendMessage")) >= calls + 2, 10)
    third.kill()  # while it waits to retry
    sent = len(c.messages)

    with BotProcess(emu, tmp_path, db):
        emu.redeliver(lost)
        [resent] = emu.wait_for_bot_messages(c.id, sent + 1)[sent:]
        assert "県内" in resent["text"]
        for n, text in enumerate(["はい", "LED", "はい", "購入", "64.1トン", "54.1 t-CO2"], 1):
            got = c.say(text, 2 if n == 6 else 1)
    assert got[-1]["text"].startswith(TITLES["eligible"])
    assert verdict(db, c.id) == (1, "finished", "eligible")
    texts = [e[1] for e in events(db, c.id) if e[0] == "in"]
    assert texts.count("該当しません") == 1


def test_a_reply_lost_in_a_crash_after_confirming_is_sent_on_restart(own_emu, tmp_path):
    """Issue 13.2: the update is confirmed once stored; if the process dies while its reply
    is being retried, nothing redelivers it: the outbox must send it on restart."""
    emu, db = own_emu, tmp_path / "bot.db"
    c = Chat(emu, 7201)
    first = BotProcess(emu, tmp_path, db).start()
    c.say("/start")
    emu.fail_next("sendMessage", status=502, times=3)
    calls = len(emu.calls_to("sendMessage"))
    emu.send_text(c.id, "1")
    emu.wait_until(lambda: len(emu.calls_to("sendMessage")) >= calls + 2, 10)  # retrying
    emu.wait_until(lambda: emu.pending_update_count == 0, 10)  # confirmed to Telegram
    first.kill()
    assert len(c.messages) == 1
    with BotProcess(emu, tmp_path, db):
        [reply] = emu.wait_for_bot_messages(c.id, 2)[1:]
        assert "主な業種" in reply["text"]
        assert c.say("製造業")[0]["text"].startswith("業種は「製造業」")
    assert query(db, "SELECT status FROM outbox WHERE chat_id = ?", str(c.id)) == []  # all sent


def test_reused_update_ids_are_new_inputs_and_never_leak_replies(own_emu, tmp_path):
    """Issue 13.3: Telegram restarts update ids after a week without updates. The same id
    from another chat, or from the same chat with another message, is a new input; before,
    it was taken for a redelivery and the stored chat's replies went to the new one."""
    emu, db = own_emu, tmp_path / "bot.db"
    a, b = Chat(emu, 7301), Chat(emu, 7302)
    with BotProcess(emu, tmp_path, db):
        a.say("/start")
        first = a.last_update
        a.press("会社（株式会社・有限会社・合同会社など）")
        pressed = a.last_update
        emu.restart_update_ids(pressed)
        [welcome] = b.say("/start")  # the update id of a's answer
        assert b.last_update == pressed
        refs = {
            chat.id: query(db, "SELECT reference FROM conversations WHERE chat_id = ?", chat.id)
            for chat in (a, b)
        }
        [[(ref_a,)], [(ref_b,)]] = refs.values()  # each welcome names its own reference number
        assert welcome["text"] == a.messages[0]["text"].replace(ref_a, ref_b)  # not a's answer
        emu.restart_update_ids(first)
        [reply] = a.say("製造業")  # the update id of a's /start, a new message
        assert a.last_update == first
        assert reply["text"].startswith("業種は「製造業」")
    assert verdict(db, a.id)[0] == 1 and verdict(db, b.id)[0] == 1


def test_token_never_reaches_debug_logs(tmp_path):
    token = "246813579:SECRET-part_must-never-leak-0123"
    with BotApiEmulator(token=token) as emu:
        process = BotProcess(emu, tmp_path, tmp_path / "bot.db", LOG_LEVEL="DEBUG")
        with process:
            c = Chat(emu, 4242)
            emu.fail_next("sendMessage", status=502)  # warnings with exception text
            c.say("/start")
            emu.fail_next("sendMessage", status=429, retry_after=1)
            c.press("医療法人")
            emu.fail_next("answerCallbackQuery", status=400)
            c.press(YES, 2)
    out = process.output
    assert "DEBUG" in out and "Retrying" in out, out[-2000:]
    assert token not in out and token.split(":")[1] not in out
    assert "医療法人" not in out  # nor what users said (PTB's payload loggers stay at INFO)


@pytest.mark.parametrize(
    "value",
    [None, "123456789:AAAA-with space-bbbbbbbbbbbbbbbbbbbbbbbb"],
    ids=["missing", "malformed"],
)  # more cases in-process: test_telegram_app
def test_missing_or_malformed_token_is_one_line_and_exit_2(tmp_path, value):
    process = BotProcess(
        None,
        tmp_path,
        tmp_path / "bot.db",
        TELEGRAM_BOT_TOKEN=value,
        TELEGRAM_API_URL="http://127.0.0.1:9/bot",
    )  # never reached
    process.start(ready=None)
    assert process.proc.wait(20) == 2
    process.stop()
    lines = process.output.splitlines()
    assert len(lines) == 1 and "TELEGRAM_BOT_TOKEN" in lines[0], lines
    if value:
        assert value not in process.output and value.split(":")[-1] not in process.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _update(update_id: int, chat_id: int, text: str) -> bytes:
    user = {"id": chat_id, "is_bot": False, "first_name": "T", "language_code": "ja"}
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": int(time.time()),
                "text": text,
                "from": user,
                "chat": {"id": chat_id, "type": "private", "first_name": "T"},
                "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
            },
        }
    ).encode()


def _post(url: str, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    deadline = time.monotonic() + 10
    while True:  # the server may still be binding its port: nothing to wait on but trying
        try:
            return httpx.post(url, content=body, headers=headers).status_code
        except httpx.ConnectError:
            assert time.monotonic() < deadline, "webhook server not reachable"
            time.sleep(0.02)


@pytest.mark.parametrize("secret", ["from-env_Secret-123", None], ids=["env", "generated"])
def test_webhook_needs_the_secret_token(own_emu, tmp_path, secret):
    emu, port = own_emu, _free_port()
    url = f"http://127.0.0.1:{port}/tg/hook"
    process = BotProcess(
        emu,
        tmp_path,
        tmp_path / "bot.db",
        "--webhook",
        url,
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        TELEGRAM_WEBHOOK_SECRET=secret,
        LOG_LEVEL="DEBUG",
    )  # DEBUG: the most that is ever logged
    with process.start(ready="setWebhook"):
        hook = emu.webhook
        assert hook["url"] == url and hook["allowed_updates"] == ["message", "callback_query"]
        used = hook["secret_token"]
        assert used == secret if secret else len(used) >= 32  # else generated at start
        assert _post(url, _update(1, 8001, "/start"), None) == 403
        assert _post(url, _update(2, 8001, "/start"), "wrong-secret") == 403
        assert _post(url, _update(3, 8000, "/start"), used) == 200
        [welcome] = emu.wait_for_bot_messages(8000, 1)
        assert "事業者の種類" in welcome["text"]
    assert process.proc.returncode == 0
    assert emu.bot_messages(8001) == []  # the rejected updates never got in
    assert used not in process.output and "DEBUG" in process.output


def test_updates_are_confirmed_to_telegram_only_once_stored(emu, bot, chat):
    """A crash between fetching and committing must lose nothing: the offset that confirms an
    update (so Telegram will not deliver it again) may only move past it once it is stored.
    The test holds the database's write lock so the bot's commit waits; a poller that
    confirmed on fetch (python-telegram-bot's own Updater does) would confirm meanwhile."""
    target, early = emu._next_update_id + 1, []  # the id the next injected update gets
    uid = f"{emu.bot_user['id']}:{target}"

    def check(confirmed: list[int]) -> None:
        if target in confirmed and not query(bot.db, "SELECT 1 FROM inputs WHERE uid = ?", uid):
            early.append(target)

    def pending() -> set[int]:
        return {u["update_id"] for u in emu._pending}

    before = len(chat.messages)
    emu.on_confirm = check
    lock = sqlite3.connect(bot.db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        emu.send_text(chat.id, "株式会社")
        with contextlib.suppress(TimeoutError):  # time for a careless poller to confirm
            emu.wait_until(lambda: target not in pending(), timeout=1.5)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    try:
        emu.wait_for_bot_messages(chat.id, before + 1)
        emu.wait_until(lambda: target not in pending())  # confirmed once stored
    finally:
        emu.on_confirm = None
    assert early == []
    assert query(bot.db, "SELECT 1 FROM inputs WHERE uid = ?", uid) == [(1,)]


def test_an_update_whose_commit_fails_is_not_confirmed_and_answered_later(emu, bot, chat):
    """Issue 13.4: the database locked for longer than the bot waits (10 s busy timeout; disk
    full fails the same way): the commit fails, so the update must stay unconfirmed, come
    again and be answered once the database is back, and nobody is told "send that again"."""
    wait_done(bot.db, chat.id, chat.last_update)  # /start's "sent" mark written: none in flight
    target, early = emu._next_update_id + 1, []
    uid = f"{emu.bot_user['id']}:{target}"

    def check(confirmed: list[int]) -> None:
        if target in confirmed and not query(bot.db, "SELECT 1 FROM inputs WHERE uid = ?", uid):
            early.append(target)

    emu.on_confirm = check
    lock = sqlite3.connect(bot.db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        emu.send_text(chat.id, "1")
        emu.wait_until(lambda: f"update {target} " in bot.output, 20)  # its commit failed
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    try:
        [reply] = emu.wait_for_bot_messages(chat.id, 2, 15)[1:]
        emu.wait_until(lambda: emu.pending_update_count == 0)
    finally:
        emu.on_confirm = None
    assert early == [] and "主な業種" in reply["text"]
    sql = "SELECT count(*) FROM events WHERE input_uid = ? AND direction = 'in'"
    assert query(bot.db, sql, uid) == [(1,)]


def test_webhook_answers_telegram_only_once_stored(own_emu, tmp_path):
    """Telegram redelivers a webhook update until it gets 200: the bot must answer only after
    the commit. The test holds the database's write lock; the request must wait for it."""
    emu, port = own_emu, _free_port()
    url = f"http://127.0.0.1:{port}/hook"
    db = tmp_path / "bot.db"
    process = BotProcess(
        emu, tmp_path, db, "--webhook", url, "--port", str(port), TELEGRAM_WEBHOOK_SECRET="s3cret"
    )
    with process.start(ready="setWebhook"):
        assert _post(url, _update(1, 8100, "/start"), "s3cret") == 200  # database created
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(httpx.ReadTimeout):  # held until the commit can happen
                httpx.post(
                    url,
                    content=_update(2, 8100, "株式会社"),
                    timeout=1.5,
                    headers={
                        "X-Telegram-Bot-Api-Secret-Token": "s3cret",
                        "Content-Type": "application/json",
                    },
                )
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        emu.wait_for_bot_messages(8100, 2)
        uid = f"{emu.bot_user['id']}:2"
        assert query(db, "SELECT count(*) FROM inputs WHERE uid = ?", uid) == [(1,)]
        assert _post(url, _update(2, 8100, "株式会社"), "s3cret") == 200  # a redelivery
        assert query(
            db, "SELECT count(*) FROM events WHERE input_uid = ? AND direction = 'in'", uid
        ) == [(1,)]
