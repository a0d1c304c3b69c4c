"""Tests for the Bot API emulator, driven by a real python-telegram-bot client over HTTP."""

import asyncio
import datetime as dtm
import time
import warnings

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    InvalidToken,
    NetworkError,
    RetryAfter,
)
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

try:  # tests/ may or may not become a package
    from tests.emulator import BotApiEmulator
except ImportError:
    from emulator import BotApiEmulator

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
CHAT = 4242
KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("はい", callback_data="q1:yes")],
        [InlineKeyboardButton("いいえ", callback_data="q1:no")],
    ]
)


@pytest.fixture
def emu():
    with BotApiEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture
async def bot(emu):
    async with Bot(emu.token, base_url=emu.api_url, base_file_url=emu.file_url) as client:
        yield client


def _seconds(value: int | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else value


async def test_get_me(bot, emu):
    me = await bot.get_me()
    assert me.is_bot and me.username == "test_screening_bot"
    assert me.id == int(emu.token.split(":")[0])
    assert emu.calls[-1] == ("getMe", {})
    assert [name for name, _ in emu.calls] == ["getMe", "getMe"]  # initialize() + get_me()


async def test_send_message_with_inline_keyboard(bot, emu):
    sent = await bot.send_message(
        CHAT, "<b>質問</b> 1 &amp; 2", parse_mode="HTML", reply_markup=KEYBOARD
    )
    assert sent.text == "質問 1 & 2"  # Telegram returns the parsed text
    assert sent.chat.id == CHAT and sent.from_user.id == bot.id
    assert sent.reply_markup == KEYBOARD
    assert isinstance(sent.date, dtm.datetime)
    [record] = emu.bot_messages(CHAT)
    assert record["message_id"] == sent.message_id
    assert record["text"] == "<b>質問</b> 1 &amp; 2" and record["parse_mode"] == "HTML"
    assert record["reply_markup"]["inline_keyboard"][1][0]["callback_data"] == "q1:no"
    assert emu.calls_to("sendMessage")[0]["chat_id"] == CHAT  # form values decoded to JSON types


async def test_get_updates_honours_offset(bot, emu):
    first = emu.send_text(CHAT, "/start", first_name="花子")
    second = emu.send_text(CHAT, "こんにちは")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [first, second]
    start = updates[0].message
    assert start.text == "/start" and start.from_user.first_name == "花子"
    assert start.from_user.language_code == "ja" and start.chat.type == "private"
    assert start.entities[0].type == "bot_command"
    assert (await bot.get_updates(offset=first + 1, timeout=0))[0].update_id == second
    assert await bot.get_updates(offset=second + 1, timeout=0) == ()
    assert emu.pending_update_count == 0
    assert await bot.get_updates(limit=1, timeout=0) == ()


async def test_long_poll_times_out_and_wakes_on_inject(bot, emu):
    began = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - began < 2

    began = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    update_id = emu.send_text(CHAT, "wake up")
    assert [u.update_id for u in await poll] == [update_id]
    assert time.monotonic() - began < 1


async def test_second_poller_terminates_the_first_with_conflict(bot, emu):
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    async with Bot(emu.token, base_url=emu.api_url) as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await first


async def test_429_raises_retry_after(bot, emu):
    emu.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(RetryAfter) as excinfo:
        await bot.send_message(CHAT, "hi")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _seconds(excinfo.value.retry_after) == 3
    assert emu.bot_messages(CHAT) == []  # the failed call was not executed
    await bot.send_message(CHAT, "hi")
    assert len(emu.bot_messages(CHAT)) == 1


async def test_502_raises_network_error_n_times(bot, emu):
    calls_before = len(emu.calls)  # Bot.initialize() already called getMe
    emu.fail_next("getMe", status=502, times=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as excinfo:
            await bot.get_me()
        assert type(excinfo.value) is NetworkError and "Bad Gateway" in str(excinfo.value)
    assert (await bot.get_me()).is_bot
    assert [name for name, _ in emu.calls[calls_before:]] == ["getMe"] * 3


async def test_drop_next_closes_connection(bot, emu):
    emu.drop_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "lost request")
    assert emu.bot_messages(CHAT) == []
    emu.drop_next("sendMessage", after=True)
    with pytest.raises(NetworkError):
        await bot.send_message(CHAT, "lost response")
    assert [m["text"] for m in emu.bot_messages(CHAT)] == ["lost response"]


async def test_wrong_token_and_unknown_method(bot, emu):
    with pytest.raises(InvalidToken):
        async with Bot("999:wrong", base_url=emu.api_url):  # initialize() calls getMe
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")


async def test_validation_like_telegram(bot, emu):
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "hi", reply_markup=too_long_data)
    japanese_22 = "あ" * 22  # 66 bytes in UTF-8
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(
            CHAT,
            "hi",
            reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("x", callback_data=japanese_22)]]
            ),
        )
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(CHAT, "あ" * 4097)
    await bot.send_message(
        CHAT, "<b>" + "あ" * 4096 + "</b>", parse_mode="HTML"
    )  # tags don't count
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(CHAT, "<b>unclosed", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)text is empty"):
        await bot.send_message(CHAT, " ")
    assert len(emu.bot_messages(CHAT)) == 1


async def test_press_answer_edit(bot, emu):
    sent = await bot.send_message(CHAT, "質問1", reply_markup=KEYBOARD)
    update_id = emu.press(CHAT, sent.message_id, "q1:yes")
    [update] = await bot.get_updates(timeout=0)
    query = update.callback_query
    assert update.update_id == update_id and query.data == "q1:yes"
    assert query.message.message_id == sent.message_id and query.from_user.id == CHAT
    assert query.chat_instance

    assert await query.answer("OK")
    with pytest.raises(BadRequest, match="(?i)query ID is invalid"):
        await query.answer()  # Telegram rejects a second answer
    assert emu.callback_answers == [{"callback_query_id": query.id, "text": "OK"}]

    await bot.edit_message_text("質問1: はい", chat_id=CHAT, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("質問1: はい", chat_id=CHAT, message_id=sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=999)
    await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=sent.message_id, reply_markup=KEYBOARD
    )
    [record] = emu.bot_messages(CHAT)
    assert record["edited"] and record["text"] == "質問1: はい"
    assert [h["text"] for h in record["history"]] == ["質問1", "質問1: はい"]
    assert record["history"][1]["reply_markup"] is None  # editMessageText dropped the keyboard

    emu.press(CHAT, sent.message_id, "q1:no")  # stale buttons can still be pressed
    [stale] = await bot.get_updates(offset=update_id + 1, timeout=0)
    assert stale.callback_query.message.text == "質問1: はい"
    with pytest.raises(ValueError):
        emu.press(CHAT, 12345, "q1:no")


async def test_redeliver_same_update_id(bot, emu):
    update_id = emu.send_text(CHAT, "once")
    await bot.get_updates(timeout=0)
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()
    emu.redeliver(update_id)
    [again] = await bot.get_updates(offset=update_id + 1, timeout=1)
    assert again.update_id == update_id and again.message.text == "once"
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()


async def test_commands_per_language(bot, emu):
    await bot.set_my_commands([("start", "Start")])
    await bot.set_my_commands([("start", "開始"), ("help", "ヘルプ")], language_code="ja")
    assert emu.commands == {
        "": [{"command": "start", "description": "Start"}],
        "ja": [
            {"command": "start", "description": "開始"},
            {"command": "help", "description": "ヘルプ"},
        ],
    }
    assert [c.command for c in await bot.get_my_commands(language_code="ja")] == ["start", "help"]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Command", "x")])


async def test_webhook_blocks_get_updates_until_deleted(bot, emu):
    assert await bot.set_webhook("https://example.invalid/hook")
    assert emu.webhook["url"] == "https://example.invalid/hook"
    with pytest.raises(Conflict):
        await bot.get_updates(timeout=0)
    emu.send_text(CHAT, "pending")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates(timeout=0) == ()
    assert await bot.close() and await bot.log_out()


async def test_json_body_and_get_query_are_accepted(emu):
    url = f"{emu.api_url}{emu.token}"
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/sendMessage", json={"chat_id": CHAT, "text": "json"})
        assert response.json()["result"]["text"] == "json"
        response = await client.get(f"{url}/getMe")
        assert response.json() == {"ok": True, "result": emu.bot_user}
        response = await client.get(f"{url}/getUpdates", params={"offset": 1})
        assert response.json() == {"ok": True, "result": []}
        response = await client.post(f"{emu.api_url}wrong/getMe")
        assert response.status_code == 401
        assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        emu.fail_next(None, status=429, retry_after=7)
        response = await client.post(f"{url}/getMe")
    assert response.status_code == 429
    assert response.json() == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }


def test_wait_for_bot_messages_times_out(emu):
    began = time.monotonic()
    with pytest.raises(TimeoutError, match="expected 1 bot messages"):
        emu.wait_for_bot_messages(CHAT, 1, timeout=0.2)
    assert time.monotonic() - began < 1


async def test_real_application_polling_end_to_end(emu):
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.message.reply_text("ようこそ", reply_markup=KEYBOARD)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(f"選択: {update.callback_query.data}")

    app = (
        ApplicationBuilder()
        .token(emu.token)
        .base_url(emu.api_url)
        .base_file_url(emu.file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(on_button))

    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        emu.send_text(CHAT, "/start")
        [welcome] = await emu.await_bot_messages(CHAT, 1, timeout=5)
        assert welcome["text"] == "ようこそ" and welcome["reply_markup"]["inline_keyboard"]
        emu.press(CHAT, welcome["message_id"], "q1:no")
        await emu.await_until(lambda: emu.bot_messages(CHAT)[0]["edited"], timeout=5)
        await app.updater.stop()
        await app.stop()

    [edited] = emu.bot_messages(CHAT)
    assert edited["text"] == "選択: q1:no" and edited["reply_markup"] is None
    assert len(emu.callback_answers) == 1
    assert emu.pending_update_count == 0  # PTB confirmed everything on shutdown
    assert emu.calls_to("deleteWebhook")  # PTB's bootstrap ran against the emulator
