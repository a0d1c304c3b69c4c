"""Tests for the LINE Messaging API emulator, driven by line-bot-sdk v3's own async client over
HTTP, and for its webhook side, checked by the SDK's WebhookParser."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
    TextMessage,
)
from linebot.v3.webhook import WebhookParser
from linebot.v3.webhooks import FollowEvent, MessageEvent, PostbackEvent, UnfollowEvent

try:  # tests/ is not a package: importable either way
    from tests.line_emulator import LineEmulator, signature
except ImportError:
    from line_emulator import LineEmulator, signature

USER = "U" + "1" * 32


@pytest.fixture
def emu():
    with LineEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture
async def api(emu):
    config = Configuration(host=emu.api_url, access_token=emu.access_token)
    async with AsyncApiClient(config) as client:
        yield AsyncMessagingApi(client)


class Receiver:
    """A bare webhook endpoint: records (raw body, signature header), answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status, self.got = status, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.got.append((body, self.headers.get("x-line-signature")))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(emu):
    r = Receiver()
    emu.webhook_url = r.url
    yield r
    r.close()


def text(value: str, **kw) -> TextMessage:
    return TextMessage(text=value, **kw)


def quick(*labels: str) -> QuickReply:
    return QuickReply(
        items=[
            QuickReplyItem(action=PostbackAction(label=label, data=f"v{n}", display_text=label))
            for n, label in enumerate(labels)
        ]
    )


def event_token(emu, receiver, user=USER) -> str:
    emu.send_text(user, "こんにちは")
    return json.loads(receiver.got[-1][0])["events"][0]["replyToken"]


# --- webhook side ---------------------------------------------------------------------------


def test_webhook_body_is_signed_and_parsed_by_the_sdk(emu, receiver):
    status, event = emu.send_text(USER, "3億円")
    assert status == 200
    body, sig = receiver.got[-1]
    assert sig == signature(emu.channel_secret, body)
    (parsed,) = WebhookParser(emu.channel_secret).parse(body.decode("utf-8"), sig)
    assert isinstance(parsed, MessageEvent)
    assert parsed.message.text == "3億円" and parsed.source.user_id == USER
    assert parsed.webhook_event_id == event["webhookEventId"]
    assert parsed.delivery_context.is_redelivery is False
    with pytest.raises(InvalidSignatureError):
        WebhookParser("another-secret").parse(body.decode("utf-8"), sig)


def test_postback_follow_unfollow_and_redelivery_events(emu, receiver):
    emu.postback(USER, "yes")
    emu.follow(USER)
    emu.unfollow(USER)
    parser = WebhookParser(emu.channel_secret)
    kinds = [parser.parse(b.decode(), s)[0] for b, s in receiver.got]
    assert [type(e) for e in kinds] == [PostbackEvent, FollowEvent, UnfollowEvent]
    assert kinds[0].postback.data == "yes" and not hasattr(kinds[2], "reply_token")
    _, event = emu.send_text(USER, "はい")
    assert emu.redeliver(event) == 200
    again = json.loads(receiver.got[-1][0])["events"][0]
    assert again["webhookEventId"] == event["webhookEventId"]
    assert again["deliveryContext"] == {"isRedelivery": True}


def test_forged_or_missing_signature_and_the_bots_status_are_reported(emu, receiver):
    emu.send_text(USER, "x")
    emu.deliver([emu.text_event(USER, "y")], signature="Zm9yZ2Vk")
    emu.deliver([emu.text_event(USER, "z")], sign=False)
    assert [s for _, s in receiver.got][1:] == ["Zm9yZ2Vk", None]
    receiver.status = 400
    assert emu.send_text(USER, "w")[0] == 400
    emu.webhook_url = "http://127.0.0.1:9/callback"  # nobody listens: no answer
    assert emu.send_text(USER, "v")[0] == 0


# --- API side ---------------------------------------------------------------------------------


async def test_reply_token_is_single_use(emu, receiver, api):
    token = event_token(emu, receiver)
    response = await api.reply_message(ReplyMessageRequest(reply_token=token, messages=[text("a")]))
    assert len(response.sent_messages) == 1
    with pytest.raises(ApiException) as err:
        await api.reply_message(ReplyMessageRequest(reply_token=token, messages=[text("b")]))
    assert err.value.status == 400 and "Invalid reply token" in err.value.body
    assert [(m["text"], m["via"]) for m in emu.messages(USER)] == [("a", "reply")]


async def test_expired_and_unknown_reply_tokens_are_refused(emu, receiver, api):
    token = event_token(emu, receiver)
    emu.expire_reply_tokens()
    for bad in (token, "0" * 32):
        with pytest.raises(ApiException) as err:
            await api.reply_message(ReplyMessageRequest(reply_token=bad, messages=[text("a")]))
        assert err.value.status == 400
    emu.reply_token_ttl = 0
    with pytest.raises(ApiException):
        token = event_token(emu, receiver)
        await api.reply_message(ReplyMessageRequest(reply_token=token, messages=[text("a")]))
    assert emu.messages(USER) == []


async def test_push_reaches_known_users_and_honours_the_retry_key(emu, receiver, api):
    emu.follow(USER)
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=USER, messages=[text("1"), text("2")])
    await api.push_message(request, x_line_retry_key=key)
    with pytest.raises(ApiException) as err:  # a retry of an accepted push is not sent twice
        await api.push_message(request, x_line_retry_key=key)
    assert err.value.status == 409
    with pytest.raises(ApiException) as err:
        await api.push_message(PushMessageRequest(to="U" + "9" * 32, messages=[text("x")]))
    assert err.value.status == 400
    assert [(m["text"], m["via"]) for m in emu.messages(USER)] == [("1", "push"), ("2", "push")]


def test_limits_are_enforced_like_line(emu):
    from tests.line_emulator import ApiError, check_messages

    ok = {"type": "text", "text": "a" * 5000}
    check_messages([ok] * 5)
    label = {"type": "postback", "label": "x" * 20, "data": "d", "displayText": "x"}
    check_messages([{**ok, "quickReply": {"items": [{"type": "action", "action": label}] * 13}}])
    too_many_items = {"items": [{"type": "action", "action": label}] * 14}
    long_label = {"items": [{"type": "action", "action": {**label, "label": "x" * 21}}]}
    cases = {
        "messages": [ok] * 6,
        "messages[0].text": [{"type": "text", "text": "a" * 5001}],
        "messages[1].quickReply.items": [ok, {**ok, "quickReply": too_many_items}],
        "messages[0].quickReply.items[0].action.label": [{**ok, "quickReply": long_label}],
    }
    for prop, messages in cases.items():
        with pytest.raises(ApiError) as err:
            check_messages(messages)
        assert err.value.status == 400 and err.value.details[0]["property"] == prop
    emoji = "😀" * 2501  # 5,002 UTF-16 units
    with pytest.raises(ApiError):
        check_messages([{"type": "text", "text": emoji}])


async def test_a_refused_reply_sends_nothing_and_keeps_the_token(emu, receiver, api):
    token = event_token(emu, receiver)
    too_long = quick("中小企業団体（事業協同組合・商工組合など）")  # 21 characters
    with pytest.raises(ApiException) as err:
        await api.reply_message(
            ReplyMessageRequest(reply_token=token, messages=[text("q", quick_reply=too_long)])
        )
    assert err.value.status == 400 and "label" in err.value.body
    assert emu.messages(USER) == []
    await api.reply_message(
        ReplyMessageRequest(reply_token=token, messages=[text("q", quick_reply=quick("はい"))])
    )
    (got,) = emu.messages(USER)
    assert got["quickReply"]["items"][0]["action"]["displayText"] == "はい"


async def test_bot_info_profile_and_loading(emu, receiver, api):
    info = await api.get_bot_info()
    assert info.user_id == emu.bot_info["userId"] and info.display_name
    with pytest.raises(ApiException) as err:
        await api.get_profile(USER)
    assert err.value.status == 404
    emu.follow(USER)
    assert (await api.get_profile(USER)).user_id == USER
    await api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=USER, loading_seconds=5))
    assert emu.loading == [{"chatId": USER, "loadingSeconds": 5}]


async def test_wrong_access_token_is_401(emu):
    config = Configuration(host=emu.api_url, access_token="wrong")
    async with AsyncApiClient(config) as client:
        with pytest.raises(ApiException) as err:
            await AsyncMessagingApi(client).get_bot_info()
    assert err.value.status == 401
    assert emu.calls_to("info") == []  # unauthorised calls are not recorded


async def test_injected_faults(emu, receiver, api):
    emu.follow(USER)
    push = PushMessageRequest(to=USER, messages=[text("p")])
    emu.fail_next("push", 503)
    with pytest.raises(ApiException) as err:
        await api.push_message(push)
    assert err.value.status == 503 and emu.messages(USER) == []
    emu.drop_next("push")
    with pytest.raises(aiohttp.ClientError):  # the connection closes without an answer
        await api.push_message(push)
    assert emu.messages(USER) == []
    emu.drop_next("push", after=True)
    with pytest.raises(aiohttp.ClientError):  # sent, but the answer is lost
        await api.push_message(push)
    assert [m["text"] for m in emu.messages(USER)] == ["p"]
    await api.push_message(push)
    assert len(emu.calls_to("push")) == 4 and len(emu.messages(USER)) == 2
