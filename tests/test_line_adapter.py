"""The LINE adapter's parts in-process: events as the SDK parses them, the adapter's words, and
sending (reply, then push; what counts as sent) against the emulator over HTTP."""

from __future__ import annotations

import json

import pytest
from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, Configuration
from linebot.v3.webhook import WebhookParser

from bot.line.adapter import LineChannel, event_of, request_of
from bot.retry import SEND_ATTEMPTS
from bot.storage import Storage
from dialogs.io import Choice, Reply

try:  # tests/ is not a package: importable either way
    from tests.line_emulator import LineEmulator, signature
except ImportError:
    from line_emulator import LineEmulator, signature

USER = "U" + "2" * 32


@pytest.fixture
def emu():
    with LineEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture
async def channel(emu, monkeypatch, tmp_path):
    monkeypatch.setattr("bot.retry.BACKOFF_S", 0)  # retries without waiting
    config = Configuration(host=emu.api_url, access_token=emu.access_token)
    async with AsyncApiClient(config) as client:
        with Storage(tmp_path / "bot.db") as storage:
            yield LineChannel(AsyncMessagingApi(client), "ja", storage)


def parsed(emu, *events: dict) -> list:
    body = json.dumps({"destination": "U0", "events": list(events)}, ensure_ascii=False)
    return WebhookParser(emu.channel_secret).parse(
        body, signature(emu.channel_secret, body.encode())
    )


def test_events_as_the_adapter_sees_them(emu):
    text, postback = emu.text_event(USER, "3億円"), emu.postback_event(USER, "industry:retail")
    follow = emu.event(USER, "follow", {"follow": {"isUnblocked": True}})
    group = emu.text_event(USER, "hi") | {
        "source": {"type": "group", "groupId": "C1", "userId": USER}
    }
    unknown = emu.event(USER, "somethingNew", {"somethingNew": {}})
    got = [event_of(e) for e in parsed(emu, text, postback, follow, group, unknown)]
    assert (got[0].kind, got[0].text, got[0].user, got[0].uid) == (
        "text",
        "3億円",
        USER,
        text["webhookEventId"],
    )
    assert got[0].reply_token == text["replyToken"] and not got[0].redelivery
    assert (got[1].kind, got[1].text) == ("postback", "industry:retail")
    assert got[2].kind == "follow"
    assert got[3] is None and got[4] is None  # groups and unknown events are ignored


def test_the_adapters_own_words():
    assert request_of("プライバシー") == "privacy" and request_of(" データ削除。") == "delete"
    assert request_of("Delete my data") == "delete"
    assert request_of("株式会社") is None and request_of("削除したい設備") is None


def reply(text: str, *choices: str) -> Reply:
    return Reply(key="k", text=text, choices=[Choice(value=f"q:{c}", label=c) for c in choices])


async def test_first_call_by_reply_the_rest_by_push(emu, channel):
    event = emu.event(USER, "follow")
    long = "\n".join(["あ" * 4999] * 3)  # three messages each
    replies = [reply(long), reply(long), reply("最後", "はい")]
    sent = await channel.send(USER, replies, {}, event["replyToken"])
    assert sent.count == 3 and not sent.final
    got = emu.messages(USER)
    assert [m["via"] for m in got] == ["reply"] * 3 + ["push"] * 4
    assert got[-1]["quickReply"]["items"][0]["action"]["data"] == "q:はい"


async def test_a_used_token_falls_back_to_push(emu, channel):
    event = emu.event(USER, "follow")
    await channel.send(USER, [reply("一")], {}, event["replyToken"])
    sent = await channel.send(USER, [reply("二")], {}, event["replyToken"])
    assert sent.count == 1
    assert [(m["text"], m["via"]) for m in emu.messages(USER)] == [("一", "reply"), ("二", "push")]


async def test_push_failures_keep_or_give_up_the_replies(emu, channel):
    emu.event(USER, "follow")  # LINE knows the user
    emu.fail_next("push", 503, times=SEND_ATTEMPTS)
    sent = await channel.send(USER, [reply("一")], {}, None)
    assert (sent.count, sent.final) == (0, False)  # may work later: kept in the outbox
    emu.drop_next("push", after=True)  # sent, answer lost: the retry's key makes it a 409
    sent = await channel.send(USER, [reply("二")], {}, None)
    assert sent.count == 1 and [m["text"] for m in emu.messages(USER)] == ["二"]
    sent = await channel.send("U" + "9" * 32, [reply("三")], {}, None)  # LINE refuses: final
    assert (sent.count, sent.final) == (0, True)
