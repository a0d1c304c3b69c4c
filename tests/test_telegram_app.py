"""The Telegram adapter's parts, in process: configuration errors, command parsing, per-chat
ordering, and the per-chat marks in the database."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
from types import SimpleNamespace

import pytest
from telegram import Chat, Message, Update, User
from tornado.web import HTTPError

from bot.cli import build_parser
from bot.delivery import ChatLocks, Inbound, Sent
from bot.storage import Storage
from bot.telegram.adapter import Live, TelegramBot, _command
from bot.telegram.app import ChatOrder, StoredQueue, advance, file_url, main
from dialogs.io import UserInput
from locales import t

GOOD = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean environment in an empty directory (no .env from the checkout)."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
        "ADMIN_USER_IDS",
        "LOG_LEVEL",
        "SUBSIDY_LANG",
        "TELEGRAM_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUBSIDY_DB", str(tmp_path / "bot.db"))
    return monkeypatch


def run(*argv: str) -> int:
    return main(build_parser("run").parse_args(["run", *argv]))


# --- configuration errors: one line, exit 2, before any network or database ------------------


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "   ",
        "not-a-token",
        "123456:short",
        "12ab:" + "x" * 35,
        GOOD.replace("AAH", "A H"),
        GOOD + "!",
        ":" + GOOD.split(":")[1],
    ],
)
def test_missing_or_malformed_token(env, capsys, tmp_path, token):
    if token is not None:
        env.setenv("TELEGRAM_BOT_TOKEN", token)
    assert run() == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "TELEGRAM_BOT_TOKEN" in err
    if token and token.strip():
        assert token not in err and token.split(":")[-1] not in err
    assert not (tmp_path / "bot.db").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("TELEGRAM_WEBHOOK_SECRET", "has space", "TELEGRAM_WEBHOOK_SECRET"),
        ("TELEGRAM_WEBHOOK_SECRET", "x" * 257, "TELEGRAM_WEBHOOK_SECRET"),
        ("LOG_LEVEL", "CHATTY", "LOG_LEVEL"),
        ("ADMIN_USER_IDS", "12,abc", "ADMIN_USER_IDS"),
    ],
)
def test_other_bad_settings(env, capsys, name, value, expected):
    env.setenv("TELEGRAM_BOT_TOKEN", GOOD)
    env.setenv(name, value)
    assert run("--webhook", "https://example.org/hook") == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and expected in err and GOOD not in err
    if name == "TELEGRAM_WEBHOOK_SECRET":
        assert value not in err


def test_english_errors_with_subsidy_lang_en(env, capsys):
    env.setenv("SUBSIDY_LANG", "en")
    assert run() == 2
    assert capsys.readouterr().err.strip() == t("telegram.cli.no_token", "en")


# --- small parts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/stats", ("stats", "", "/stats")),
        ("/show 12", ("show", "12", "/show 12")),
        ("/Start@Test_Screening_Bot", ("start", "", "/Start")),
        ("/edit@test_screening_bot  capital_yen ", ("edit", "capital_yen", "/edit capital_yen")),
        ("/start@other_bot", (None, "", "/start@other_bot")),
        ("製造業", (None, "", "製造業")),
    ],
)
def test_commands(text, expected):
    assert _command(text, "test_screening_bot") == expected


def test_file_url_sits_beside_the_api_url():
    assert file_url("http://127.0.0.1:8081/bot") == "http://127.0.0.1:8081/file/bot"
    assert file_url("https://api.telegram.org/bot/") == "https://api.telegram.org/file/bot"
    assert file_url("http://h/tg/bot{token}") == "http://h/tg/file/bot{token}"


def _update(update_id: int, chat_id: int) -> Update:
    chat = Chat(chat_id, Chat.PRIVATE)
    return Update(update_id, message=Message(update_id, dt.datetime.now(dt.UTC), chat, text="x"))


async def test_chats_run_concurrently_each_in_order():
    order = ChatOrder(16, ChatLocks())
    started: list[tuple[int, int]] = []
    gate = asyncio.Event()

    async def work(chat_id: int, n: int) -> None:
        started.append((chat_id, n))
        if (chat_id, n) == (1, 0):
            await gate.wait()  # chat 1's first update is slow
        await asyncio.sleep(0)

    plan = [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2)]
    tasks = [
        asyncio.create_task(order.process_update(_update(i, c), work(c, n)))
        for i, (c, n) in enumerate(plan)
    ]
    await asyncio.gather(*(tasks[i] for i in (1, 3, 5)))  # chat 2 finishes meanwhile
    assert [s for s in started if s[0] == 1] == [(1, 0)]
    gate.set()
    await asyncio.gather(*tasks)
    assert [n for c, n in started if c == 1] == [0, 1, 2]
    assert [n for c, n in started if c == 2] == [0, 1, 2]
    assert len(order.locks) == 0  # idle chats are forgotten


# --- the core's view of Telegram ----------------------------------------------------------


def test_marks_follow_the_conversation_and_go_with_it(tmp_path):
    with Storage(tmp_path / "bot.db") as storage:
        bot = TelegramBot(storage, "ja", frozenset())
        core = bot.delivery

        def commit(uid, text=None, press=None):
            live = Live() if press is None else Live(True, press)
            inp = UserInput(text=text) if press is None else UserInput(choice="corporation")
            return core.commit(Inbound("42", "42", uid, None, inp, live))

        first = commit("1:100", "/start")
        assert first.status == "new" and core.marks("42") == {"keyboard": None, "remove": []}
        core.mark("42", first.pending[0], channel_sent(first, keyboard=7))
        assert core.marks("42") == {"keyboard": 7, "remove": []}
        assert commit("1:101", press=6).status == "stale"  # not the live keyboard
        assert commit("1:102", press=7).status == "new"
        assert core.marks("42") == {"keyboard": None, "remove": [7]}  # to remove before sending
        storage.delete_user(42)
        assert core.marks("42") == {}  # cascaded with the conversation


def channel_sent(turn, keyboard):
    return Sent(len(turn.pending[0].replies), {"keyboard": keyboard, "remove": []})


async def test_the_poller_confirms_up_to_the_first_update_not_stored():
    loop = asyncio.get_running_loop()

    def futures(**results: bool | None) -> dict[int, asyncio.Future]:
        made = {}
        for name, result in results.items():
            made[int(name[1:])] = future = loop.create_future()
            if result is not None:
                future.set_result(result)
        return made

    inflight = futures(u5=True, u6=False, u7=True, u8=None)
    assert advance(inflight, None) == (6, True)
    assert set(inflight) == {7, 8}  # 6 is fetched and handled again; 7 is skipped when it comes
    inflight = futures(u5=True, u6=None, u7=True)
    assert advance(inflight, 4) == (6, False) and set(inflight) == {6, 7}
    inflight[6].set_result(True)
    assert advance(inflight, 6) == (8, False) and inflight == {}
    assert advance({}, 5) == (5, False)


async def test_a_failing_update_is_logged_and_the_user_told(tmp_path, caplog):
    sent = []

    async def do_api_request(endpoint, api_kwargs):
        sent.append((api_kwargs["chat_id"], api_kwargs["text"]))
        return {"message_id": 1}

    with Storage(tmp_path / "bot.db") as storage:
        bot = TelegramBot(storage, "ja", frozenset())
        bot.app = SimpleNamespace(bot=SimpleNamespace(do_api_request=do_api_request))
        context = SimpleNamespace(error=RuntimeError("database is locked"))
        with caplog.at_level(logging.ERROR):
            await bot.on_error(_update(5, 77), context)
    assert sent == [(77, t("telegram.error", "ja"))]
    assert "update 5 failed" in caplog.text and "database is locked" in caplog.text


def _from_user(update_id: int, chat_id: int, text: str) -> Update:
    chat, user = Chat(chat_id, Chat.PRIVATE), User(chat_id, "Owner", False)
    message = Message(update_id, dt.datetime.now(dt.UTC), chat, from_user=user, text=text)
    return Update(update_id, message=message)


def _fake_api(bot: TelegramBot, sent: list, fail: Exception | None = None) -> None:
    async def do_api_request(endpoint, api_kwargs):
        assert endpoint == "sendMessage"
        if fail is not None:
            raise fail
        sent.append((api_kwargs["chat_id"], api_kwargs["text"]))
        return {"message_id": len(sent)}

    bot.app = SimpleNamespace(
        bot=SimpleNamespace(do_api_request=do_api_request, id=1, username="b")
    )


async def test_an_update_not_stored_is_not_confirmed_and_nobody_told(tmp_path):
    """Issue 13.4: a storage failure (here a lock held beyond the busy timeout; disk full is
    the same error class) must not confirm the update: Telegram delivers it again."""
    with Storage(tmp_path / "bot.db") as storage:
        bot, sent = TelegramBot(storage, "ja", frozenset()), []
        _fake_api(bot, sent)
        storage.db.execute("PRAGMA busy_timeout = 50")
        lock = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            confirm = bot.expect(5)
            await bot.on_update(_from_user(5, 77, "/start"), None)  # no exception: no "again"
            assert confirm.result() is False and sent == []
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        confirm = bot.expect(5)  # delivered again: stored and answered now
        await bot.on_update(_from_user(5, 77, "/start"), None)
        assert confirm.result() is True and len(sent) == 1


async def test_the_webhook_answers_503_for_an_update_not_stored(tmp_path):
    with Storage(tmp_path / "bot.db") as storage:
        bot = TelegramBot(storage, "ja", frozenset())
        queue = StoredQueue(bot)
        update = _from_user(9, 77, "/start")
        put = asyncio.create_task(queue.put(update))
        await asyncio.sleep(0)
        bot._release(9, stored=False)
        with pytest.raises(HTTPError) as refused:
            await put
        assert refused.value.status_code == 503


async def test_a_failure_after_the_commit_never_says_nothing_was_processed(tmp_path):
    """Issue 13.9: once committed, the input is processed: a failure in sending (here not
    even a Telegram error) must not reach the error handler ("send that again"); the reply
    waits in the outbox and goes out later."""
    with Storage(tmp_path / "bot.db") as storage:
        bot, sent = TelegramBot(storage, "ja", frozenset()), []
        _fake_api(bot, sent, fail=RuntimeError("unexpected"))
        await bot.on_update(_from_user(5, 77, "/start"), None)  # does not raise
        pending, _ = bot.delivery.pending("77")
        assert len(pending) == 1
        _fake_api(bot, sent)
        assert await bot.delivery.flush() == 1
        assert len(sent) == 1 and "事業者の種類" in sent[0][1]


async def test_a_copy_of_an_update_being_handled_is_not_refused_but_waits_behind_it():
    """Webhook retries: a chat's queue is full and Telegram sends again an update still being
    handled. Refusing it would note it handled before the original is stored (which would
    then be a duplicate, never stepped); it runs after the original instead."""
    from bot.telegram.app import MAX_QUEUED_PER_CHAT

    refused: list[int] = []

    async def refuse(update: Update, first: bool) -> None:
        refused.append(update.update_id)

    order = ChatOrder(16, ChatLocks(), refuse)
    gate, ran = asyncio.Event(), []

    async def work(n: int) -> None:
        await gate.wait()
        ran.append(n)

    tasks = [
        asyncio.create_task(order.process_update(_update(n, 1), work(n)))
        for n in range(MAX_QUEUED_PER_CHAT)
    ]
    await asyncio.sleep(0)
    copy = asyncio.create_task(order.process_update(_update(0, 1), work(100)))  # update 0 again
    other = asyncio.create_task(order.process_update(_update(99, 1), work(99)))  # a new one
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks, copy, other)
    assert refused == [99]
    assert ran == [*range(MAX_QUEUED_PER_CHAT), 100]
