"""The LINE adapter: webhook events in, through the delivery core (bot/delivery.py), replies out
by the reply API with the event's reply token, or by push when that fails.

One webhook request carries one or more events. Each event runs as its own task under its chat's
lock (events of one user in order, users concurrently): dialog inputs are committed (dedup on
`webhookEventId`, step, one transaction with the outbox), and the request is answered 200 only
once every event of it is committed; then the replies go out. A storage failure answers 500, so
LINE redelivers the request (webhook redelivery on). The adapter's own requests (privacy,
delete my data, admin reports, refusals of stickers and over-long text) are answered directly and
store nothing, as on Telegram.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiohttp
from linebot.v3.messaging import (
    ApiException,
    AsyncMessagingApi,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
    TextMessage,
)
from linebot.v3.webhooks import (
    FollowEvent,
    MessageEvent,
    PostbackEvent,
    TextMessageContent,
    UnfollowEvent,
)

from bot import retry
from bot.delivery import Channel, Delivery, Inbound, Marks, NotStored, Sent
from bot.line import render
from bot.storage import Storage
from dialogs.checklist import with_checklist
from dialogs.engine import CHECKLIST_KEY, step
from dialogs.io import Choice, Reply, UserInput
from dialogs.parsing import normalize
from locales import t
from rules import yaml_data
from rules.clock import today

log = logging.getLogger(__name__)

CHANNEL = "line"
MAX_INPUT_CHARS = 1000  # longer messages are refused before the dialog (no answer is that long)
CALL_TIMEOUT_S = 10  # a Messaging API call (the SDK's default is 5 minutes)
LOADING_S = 5  # the shortest loading animation LINE shows; the next message ends it anyway
DELETE_YES, DELETE_NO = "line:delete:yes", "line:delete:no"  # "line:" never starts a dialog value
ADMIN_COMMANDS = ("stats", "recent", "show")
SENT, FAILED, REFUSED = "sent", "failed", "refused"


@functools.cache
def _words() -> dict[str, str]:
    """normalised word -> adapter request (privacy, delete)."""
    text = (resources.files("bot.line") / "words.yaml").read_text(encoding="utf-8")
    return {normalize(w): name for name, words in yaml_data.load(text).items() for w in words}


def request_of(text: str) -> str | None:
    return _words().get(normalize(text).strip("。.!！"))


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (0, 429) or exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | TimeoutError)


def _why(exc: Exception) -> str:
    """A failed call in one line, without headers (the request's hold the access token)."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''} {(exc.body or '')[:200]}".strip()
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Event:
    """What the adapter needs of one webhook event."""

    user: str
    kind: str  # text, postback, follow, unfollow, other
    uid: str | None  # webhookEventId (None: not deduplicated)
    reply_token: str | None
    text: str | None = None  # the text typed, or the postback data
    redelivery: bool = False


def event_of(raw: Any) -> Event | None:
    """The SDK's event object as an Event; None for what we ignore (groups, rooms, no user)."""
    source = getattr(raw, "source", None)
    user = getattr(source, "user_id", None)
    if getattr(source, "type", None) != "user" or not user:
        return None  # a screening is personal: one-to-one chats only
    context = getattr(raw, "delivery_context", None)
    common = {
        "user": user,
        "uid": getattr(raw, "webhook_event_id", None) or None,
        "reply_token": getattr(raw, "reply_token", None),
        "redelivery": bool(getattr(context, "is_redelivery", False)),
    }
    if isinstance(raw, MessageEvent):
        if isinstance(raw.message, TextMessageContent):
            return Event(kind="text", text=raw.message.text, **common)
        return Event(kind="other_message", **common)
    if isinstance(raw, PostbackEvent):
        return Event(kind="postback", text=raw.postback.data, **common)
    if isinstance(raw, FollowEvent):
        return Event(kind="follow", **common)
    if isinstance(raw, UnfollowEvent):
        return Event(kind="unfollow", **common)
    return None


class LineChannel(Channel):
    """Sending for the delivery core: the first call by the reply API when the live event's
    reply token is given (single use: later calls of the turn, and any failure, go by push)."""

    name = CHANNEL
    outbox = True

    def __init__(self, api: AsyncMessagingApi, lang: str, storage: Storage) -> None:
        self.api, self.lang, self.storage = api, lang, storage

    async def send(self, chat: str, replies: list[Reply], marks: Marks, meta: Any) -> Sent:
        if any(r.key == CHECKLIST_KEY for r in replies):
            replies = await asyncio.to_thread(self._with_checklist, chat, replies)
        done, token = 0, meta
        for batch, completes in render.calls(replies, self.lang):
            outcome = await self.post(chat, batch, token)
            if outcome != SENT:
                return Sent(done, marks, final=outcome == REFUSED)
            token, done = None, completes
        return Sent(done, marks)

    def _with_checklist(self, chat: str, replies: list[Reply]) -> list[Reply]:
        """LINE cannot send a file: the checklist goes as text inside the reply that announces
        it (before its quick reply, which only the last message shows)."""
        current = self.storage.current(CHANNEL, chat)
        return with_checklist(current[1], replies, today()) if current else replies

    async def post(self, user: str, batch: list[render.Message], token: str | None) -> str:
        """One call's messages: by reply with `token`, else (or when that fails) by push.
        SENT, FAILED (may work later) or REFUSED (LINE refuses the push: it never will)."""
        messages = [TextMessage.from_dict(m) for m in batch]
        if token:
            try:
                request = ReplyMessageRequest(reply_token=token, messages=messages)
                await self.api.reply_message(request, _request_timeout=CALL_TIMEOUT_S)
                return SENT
            except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
                log.info("reply failed (%s); sending by push", _why(exc))
        # One retry key for every attempt: LINE sends a push at most once per key (409 after).
        key = str(uuid.uuid4())
        request = PushMessageRequest(to=user, messages=messages)
        try:  # network errors, 429 and 5xx retried: the key makes a repeat harmless
            await retry.call(
                "push",
                lambda: self.api.push_message(
                    request, x_line_retry_key=key, _request_timeout=CALL_TIMEOUT_S
                ),
                _retryable,
                self.stopping,
                _why,
            )
            return SENT
        except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, ApiException) and exc.status == 409:
                return SENT  # an earlier attempt went through; its answer was lost
            if not _retryable(exc):
                log.error("push refused, replies given up: %s", _why(exc))
                return REFUSED
            log.error("push failed, replies kept to send later: %s", _why(exc))
            return FAILED


class LineBot:
    """The webhook's work: events in, the delivery core, the adapter's own requests."""

    def __init__(
        self,
        storage: Storage,
        api: AsyncMessagingApi,
        lang: str,
        admins: frozenset[str],
        on: dt.date | None = None,
    ) -> None:
        self.storage, self.api, self.lang, self.admins = storage, api, lang, admins
        self.channel = LineChannel(api, lang, storage)
        self.delivery = Delivery(storage, self.channel, functools.partial(step, on=on), lang)
        self._tasks: set[asyncio.Task] = set()

    async def handle(self, raw_events: list[Any]) -> bool:
        """Start one task per event; True once every event is committed (or needed no
        commit), False if one could not be stored (answer 500: LINE redelivers)."""
        committed = []
        for raw in raw_events:
            event = event_of(raw)
            if event is None:
                continue
            stored = asyncio.get_running_loop().create_future()
            committed.append(stored)
            task = asyncio.create_task(self._event(event, stored))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return all(await asyncio.gather(*committed))

    async def drain(self) -> None:
        """Let the events in flight finish sending (on shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _event(self, event: Event, stored: asyncio.Future) -> None:
        try:
            async with self.delivery.locks.hold(event.user):
                await self._in_order(event, stored)
        except Exception:
            log.exception("event %s failed", event.uid)
        finally:
            if not stored.done():
                stored.set_result(True)  # not a storage failure: a redelivery would fail again

    async def _in_order(self, event: Event, stored: asyncio.Future) -> None:
        if event.kind == "unfollow":
            # no user id: logs outlive a delete-my-data request
            log.info("a user unfollowed (blocked) the account (event %s)", event.uid)
            return
        if event.kind == "follow":
            return await self._turn(event, UserInput(choice="/start"), stored)
        if event.kind == "other_message":
            return await self._say(event, t("line.text_only", self.lang))
        if event.kind == "postback":
            if event.text in (DELETE_YES, DELETE_NO):
                return await self._on_delete(event, erase=event.text == DELETE_YES)
            return await self._turn(event, UserInput(choice=event.text), stored)
        text = event.text or ""
        if len(text) > MAX_INPUT_CHARS:
            return await self._say(event, t("line.too_long", self.lang, max=MAX_INPUT_CHARS))
        request = request_of(text)
        command, _, arg = text.strip().partition(" ")
        if request == "privacy":
            await self._say(event, t("line.privacy", self.lang))
        elif request == "delete":
            choices = [
                Choice(value=DELETE_YES, label=t("line.delete.erase", self.lang)),
                Choice(value=DELETE_NO, label=t("line.delete.keep", self.lang)),
            ]
            confirm = Reply(key="line", text=t("line.delete.confirm", self.lang), choices=choices)
            await self._send(event, render.messages([confirm], self.lang))
        elif command.lstrip("/") in ADMIN_COMMANDS and command[:1] == "/" and self._admin(event):
            await self._report(event, command.lstrip("/"), arg.strip())
        else:  # for anyone else an admin command is just text, like any unknown command
            await self._turn(event, UserInput(text=text), stored)

    def _admin(self, event: Event) -> bool:
        return event.user in self.admins

    async def _turn(self, event: Event, inp: UserInput, stored: asyncio.Future) -> None:
        """One dialog input: committed first (then the webhook may answer 200), then sent."""
        loading = asyncio.create_task(self._loading(event.user))
        inbound = Inbound(event.user, event.user, event.uid, None, inp, event.reply_token)
        try:
            turn = await self.delivery.commit_async(inbound)
        except NotStored as exc:
            log.error("event %s not stored (%s); LINE will redeliver it", event.uid, exc)
            stored.set_result(False)
            turn = None
        except Exception:  # a bug in the step: tell the user rather than go silent
            log.exception("event %s failed before it was stored", event.uid)
            stored.set_result(True)
            await loading
            return await self._say(event, t("line.error", self.lang))
        else:
            stored.set_result(True)
        await loading  # before the replies: a late animation would follow them
        if turn is None:
            return
        if turn.status == "duplicate":
            log.info("event %s was redelivered; re-sending only what is unsent", event.uid)
        await self.delivery.deliver(turn, event.reply_token)

    async def _loading(self, user: str) -> None:
        """Best effort: the loading animation while the step runs."""
        request = ShowLoadingAnimationRequest(chat_id=user, loading_seconds=LOADING_S)
        call = functools.partial(
            self.api.show_loading_animation, request, _request_timeout=CALL_TIMEOUT_S
        )
        await self._try("loading", call)

    async def _on_delete(self, event: Event, erase: bool) -> None:
        if erase:
            counts = await asyncio.to_thread(self.storage.delete_user, event.user)
            text = t("line.delete.done", self.lang, conversations=counts["conversations"])
            log.info("deleted the data of a user on request: %s", counts)
        else:
            text = t("line.delete.kept", self.lang)
        await self._say(event, text)

    async def _report(self, event: Event, command: str, arg: str) -> None:
        from bot.admin import report as admin_report  # lazily: only admins need it

        text = await asyncio.to_thread(
            admin_report.chat_report, self.storage, command, arg, self.lang
        )
        if text is None:
            return await self._say(event, t("line.admin.show_usage", self.lang))
        await self._send(event, render.preformatted(text))

    async def _say(self, event: Event, text: str) -> None:
        await self._send(event, render.messages([Reply(key="line", text=text)], self.lang))

    async def _send(self, event: Event, outgoing: list[render.Message]) -> None:
        """The adapter's own messages (nothing stored): reply, else push; failures logged."""
        token = event.reply_token
        for batch in render.batches(outgoing):
            if await self.channel.post(event.user, batch, token) != SENT:
                return
            token = None

    async def _try(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await make()
        except (TimeoutError, ApiException, aiohttp.ClientError) as exc:
            log.debug("%s failed: %s", what, _why(exc))
            return None
