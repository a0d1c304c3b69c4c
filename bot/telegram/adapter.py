"""The Telegram adapter's handlers: one update in, under its chat's lock (see ChatOrder).

A dialog input goes through the delivery core (bot/delivery.py): commit (dedup on the chat, the
update id and the message or callback query id; step; one transaction), confirm the update,
then send. `TelegramChannel` is the core's view of Telegram: chat ids, sending, and the marks
it keeps per chat: the message whose inline keyboard is live (a press on any other is stale:
answered, nothing changes) and the older keyboards still shown. Those are not stripped by a
second API call per turn (that halved what the rate limiter lets through); /delete removes
them. Adapter commands (/privacy, /delete, and for admins /stats /recent /show) never reach
the dialog; everything else does, as text or a button value.

Language: SUBSIDY_LANG for everyone (the Telegram client's language is not used). The service
is the prefecture's, in Japanese; an English deployment sets SUBSIDY_LANG=en. The command menu
itself is set in both languages and Telegram shows the one matching the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from telegram import BotCommand, CallbackQuery, LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError
from telegram.ext import Application, ContextTypes
from telegram.warnings import PTBUserWarning

from bot import MAX_INPUT_CHARS, retry
from bot.checklist_pdf import checklist_pdf
from bot.checklist_pdf import filename as checklist_filename
from bot.delivery import Channel, Delivery, Inbound, Marks, NotStored, Sent
from bot.runtime import tune_gc
from bot.storage import Storage
from bot.telegram import render
from dialogs.engine import CHECKLIST_KEY, step
from dialogs.io import Choice, Reply, UserInput
from locales import LANGS, t
from rules.clock import today

log = logging.getLogger(__name__)

CHANNEL = "telegram"
COMMANDS = (
    "start",
    "help",
    "back",
    "summary",
    "why",
    "skip",
    "restart",
    "cancel",
    "privacy",
    "delete",
)  # the menu; the dialog understands its own commands as text
ADMIN_COMMANDS = ("stats", "recent", "show")
DELETE_YES, DELETE_NO = "tg:delete:yes", "tg:delete:no"  # "tg:" never starts a dialog value
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
NO_PREVIEW_JSON = json.dumps(NO_PREVIEW.to_dict())
# sendMessage goes through do_api_request on purpose (see TelegramBot._send_message)
warnings.filterwarnings("ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning)


def _command(text: str, username: str) -> tuple[str | None, str, str]:
    """(command name or None, its argument, the text with a trailing @our_username removed)."""
    if not text.startswith("/"):
        return None, "", text
    head, _, arg = text.partition(" ")
    name, _, at = head[1:].partition("@")
    if at and at.lower() != username.lower():
        return None, "", text  # addressed to another bot
    arg = arg.strip()
    return name.lower(), arg, f"/{name} {arg}".rstrip()


def _network(exc: BaseException) -> bool:
    """Network errors, timeouts and 5xx (not a bad request)."""
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest)


def _before_sending(exc: BaseException) -> bool:
    """A failure known to come before Telegram acted: no connection made, or Telegram's own
    error answer (5xx: python-telegram-bot raises it without a cause). A read timeout or a
    connection dropped after the request went out is not: the message may have arrived."""
    before = httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
    return _network(exc) and (exc.__cause__ is None or isinstance(exc.__cause__, before))


@dataclass(frozen=True)
class Live:
    """A live input's Telegram side, for the core: the message whose button was pressed."""

    pressed: bool = False
    message_id: int | None = None


KEEP_KEYBOARDS = 60  # old keyboards remembered per chat, for /delete to remove


def keyboards(marks: Marks) -> list[int]:
    """The chat's keyboards still shown: the older ones and the live one, oldest first."""
    return [m for m in [*marks.get("remove", []), marks.get("keyboard")] if m is not None]


class TelegramChannel(Channel):
    name = CHANNEL

    def __init__(self, bot: TelegramBot) -> None:
        self.bot = bot

    def stale(self, inbound: Inbound, marks: Marks) -> bool:
        """A press on any keyboard but the live one (its removal failed, or a second press
        raced the first)."""
        live = inbound.meta
        return (
            isinstance(live, Live)
            and live.pressed
            and (live.message_id is None or live.message_id != marks.get("keyboard"))
        )

    def committed(self, marks: Marks) -> Marks:
        """A new turn: the live keyboard is now an old one (its presses are stale)."""
        return {"keyboard": None, "remove": keyboards(marks)[-KEEP_KEYBOARDS:]}

    async def send(self, chat: str, replies: list[Reply], marks: Marks, meta: object) -> Sent:
        # this turn's keyboard replaces any other (an earlier unsent turn's, sent just before)
        keyboard_id, failed, final = await self.bot._send(int(chat), render.messages(replies))
        count = len(replies) if failed is None else failed
        if any(r.key == CHECKLIST_KEY for r in replies[:count]):  # "here it is": the document
            await self.bot._send_checklist(int(chat))
        return Sent(
            count, {"keyboard": keyboard_id, "remove": self.committed(marks)["remove"]}, final
        )


class TelegramBot:
    """The handlers, with what they share: storage, language, admin ids, evaluation date."""

    def __init__(
        self, storage: Storage, lang: str, admins: frozenset[int], on: dt.date | None = None
    ) -> None:
        self.storage, self.lang, self.admins = storage, lang, admins
        self.delivery = Delivery(
            storage, TelegramChannel(self), functools.partial(step, on=on), lang
        )
        self.app: Application | None = None
        self._stored: dict[int, asyncio.Future[bool]] = {}
        self._flusher: asyncio.Task | None = None

    @property
    def bot(self):
        return self.app.bot

    async def on_start(self, app: Application) -> None:
        """At start-up: the command menu in each language (the default in SUBSIDY_LANG)."""
        self.app = app
        for code in ("", *LANGS):
            menu = [BotCommand(c, t(f"telegram.commands.{c}", code or self.lang)) for c in COMMANDS]
            await self._try(
                "setMyCommands",
                functools.partial(app.bot.set_my_commands, menu, language_code=code or None),
            )
        log.info("bot @%s ready; resuming from %s", app.bot.username, self.storage.path)
        if self._flusher is None:  # unsent replies now (a crash may have left some) and later
            self._flusher = asyncio.create_task(self.delivery.run_flusher())
        tune_gc()

    async def on_stop(self, app: Application) -> None:
        """Stop sending and retrying, and the outbox flusher (what is unsent stays in the
        outbox for the next start)."""
        await self.delivery.stop()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A bug: log it, and tell the user rather than go silent. Such failures come before
        the commit (the step), which then kept nothing: sending the message again is the right
        advice. (A storage failure is not confirmed and comes back; nothing after the commit
        raises: the outbox keeps what could not be sent.)"""
        uid = update.update_id if isinstance(update, Update) else None
        log.error("update %s failed", uid, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None and self.app:
            await self._say(update.effective_chat.id, t("telegram.error", self.lang))

    def expect(self, update_id: int) -> asyncio.Future[bool]:
        """A future that says whether the update may be confirmed to Telegram: True once it is
        stored (or needs no storing), False when storing failed (Telegram must deliver it
        again). The poller and the webhook confirm only on True."""
        return self._stored.setdefault(update_id, asyncio.get_running_loop().create_future())

    def _release(self, update_id: int, stored: bool = True) -> None:
        future = self._stored.pop(update_id, None)
        if future is not None and not future.done():
            future.set_result(stored)

    async def refuse(self, update: Update, first: bool) -> None:
        """Flow control (ChatOrder): the chat already has several updates waiting. This one is
        not read; it is confirmed to Telegram, and the first refusal of a burst asks the user
        to wait for the reply and send it again then (a pressed button hears it too)."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None or chat.type != ChatType.PRIVATE:
            return self._release(update.update_id)
        query = update.callback_query
        tag = f"q:{query.id}" if query is not None else f"m:{update.message.message_id}"
        uid = f"{self.bot.id}:{update.update_id}"
        inbound = Inbound(str(chat.id), str(user.id), uid, tag, UserInput(text=""))
        text = t("robustness.flood.wait", self.lang)
        notice = Reply(key="robustness.flood.wait", text=text) if first else None
        try:  # noted as handled first: a redelivery after a crash is not read out of order;
            # the notice goes through the outbox with it, so a crash cannot lose it either
            queued = await asyncio.to_thread(self.delivery.refuse, inbound, notice)
        except NotStored as exc:
            log.warning("update %s not noted (%s); Telegram will deliver it again", uid, exc)
            return self._release(update.update_id, stored=False)
        self._release(update.update_id)
        log.info("update %s not read: its chat has too many waiting", update.update_id)
        if update.callback_query is not None:
            await self._try(
                "answerCallbackQuery", functools.partial(update.callback_query.answer, text)
            )
        if queued:
            self.delivery.send_soon(str(chat.id))

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            chat, user = update.effective_chat, update.effective_user
            if chat is None or user is None or chat.type != ChatType.PRIVATE:
                return  # a screening is personal: private chats only
            if update.callback_query is not None:
                await self._on_press(update, update.callback_query)
            elif update.message is not None:
                await self._on_message(update, update.message)
        except NotStored as exc:  # say nothing: the redelivery will be answered
            self._release(update.update_id, stored=False)
            log.warning(
                "update %s not stored (%s); Telegram will deliver it again",
                *(update.update_id, exc),
            )
        finally:
            self._release(update.update_id)

    # --- inputs ---

    async def _on_message(self, update: Update, message: Message) -> None:
        chat_id, user_id = message.chat.id, update.effective_user.id
        if message.text is None:
            return await self._say(chat_id, t("telegram.text_only", self.lang))
        if len(message.text) > MAX_INPUT_CHARS:
            return await self._say(chat_id, t("telegram.too_long", self.lang, max=MAX_INPUT_CHARS))
        command, arg, text = _command(message.text, self.bot.username or "")
        if command == "privacy":
            await self._say(chat_id, t("telegram.privacy", self.lang))
        elif command == "delete":
            choices = [
                Choice(value=DELETE_YES, label=t("telegram.delete.erase", self.lang)),
                Choice(value=DELETE_NO, label=t("telegram.delete.keep", self.lang)),
            ]
            await self._send(
                chat_id,
                render.messages(
                    [
                        Reply(
                            key="telegram.delete.confirm",
                            text=t("telegram.delete.confirm", self.lang),
                            choices=choices,
                        )
                    ]
                ),
            )
        elif command in ADMIN_COMMANDS and user_id in self.admins:
            await self._admin(chat_id, command, arg)
        else:  # for anyone else an admin command is just text, like any unknown command
            await self._turn(update, UserInput(text=text))

    async def _on_press(self, update: Update, query: CallbackQuery) -> None:
        data = query.data or ""
        if data in (DELETE_YES, DELETE_NO):
            return await self._on_delete(update, query, erase=data == DELETE_YES)
        message_id = query.message.message_id if query.message else None
        await self._turn(update, UserInput(choice=data), query, Live(True, message_id))

    async def _turn(
        self,
        update: Update,
        inp: UserInput,
        query: CallbackQuery | None = None,
        live: Live | None = None,
    ) -> None:
        """One dialog input: commit, confirm, then send (the delivery core)."""
        chat_id, user_id = update.effective_chat.id, update.effective_user.id
        uid = f"{self.bot.id}:{update.update_id}"  # update ids are per bot; a new bot restarts
        tag = f"q:{query.id}" if query is not None else f"m:{update.message.message_id}"
        live = live or Live()
        inbound = Inbound(str(chat_id), str(user_id), uid, tag, inp, live)
        turn = await self.delivery.commit_async(inbound)
        self._release(update.update_id)  # committed: safe to confirm before sending
        if turn.status == "stale":
            # An old keyboard: say so and change nothing. Its buttons go too, so it cannot
            # happen again.
            await self._try(
                "answerCallbackQuery",
                functools.partial(query.answer, t("telegram.stale_button", self.lang)),
            )
            if live.message_id is not None:
                await self._remove_keyboard(chat_id, live.message_id)
            return
        if query is not None:
            await self._try("answerCallbackQuery", query.answer)
        if turn.status == "duplicate" and not turn.pending:
            log.info("update %s was redelivered; its replies were sent already", uid)
            return
        await self.delivery.deliver(turn, live)

    async def _on_delete(self, update: Update, query: CallbackQuery, erase: bool) -> None:
        chat_id = update.effective_chat.id
        await self._try("answerCallbackQuery", query.answer)
        if erase:
            marks = await asyncio.to_thread(self.delivery.marks, str(chat_id))
            for message_id in keyboards(marks):
                await self._remove_keyboard(chat_id, message_id)
            counts = await asyncio.to_thread(self.storage.delete_user, update.effective_user.id)
            text = t("telegram.delete.done", self.lang, conversations=counts["conversations"])
            log.info("deleted the data of a user on request: %s", counts)
        else:
            text = t("telegram.delete.kept", self.lang)
        if query.message is None:
            return await self._say(chat_id, text)
        await self._try(
            "editMessageText",
            functools.partial(
                self.bot.edit_message_text,
                render.escape(text),
                chat_id=chat_id,
                message_id=query.message.message_id,
                parse_mode=ParseMode.HTML,
            ),
        )

    async def _admin(self, chat_id: int, command: str, arg: str) -> None:
        from bot.admin import report as admin_report  # lazily: only admins need it

        text = await asyncio.to_thread(
            admin_report.chat_report, self.storage, command, arg, self.lang
        )
        if text is None:
            return await self._say(chat_id, t("telegram.admin.show_usage", self.lang))
        await self._send(chat_id, render.preformatted(text))

    # --- Bot API calls ---

    async def _call(
        self, what: str, make: Callable[[], Awaitable[Any]], repeatable: bool = True
    ) -> Any:
        """A Bot API call, retried with back-off on network errors and 5xx (a bad request is
        not retried; 429 is AIORateLimiter's, which waits as told). A call that is not
        `repeatable` (a message sent) is retried only when it cannot have reached Telegram."""
        retryable = _network if repeatable else _before_sending
        return await retry.call(what, make, retryable, self.delivery.stopping)

    async def _try(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """Best effort: a failure is logged, never raised."""
        try:
            return await self._call(what, make)
        except TelegramError as exc:
            log.log(
                logging.DEBUG if isinstance(exc, BadRequest) else logging.WARNING,
                "%s failed: %s",
                what,
                exc,
            )
            return None

    async def _remove_keyboard(self, chat_id: int, message_id: int) -> None:
        await self._try(
            "editMessageReplyMarkup",
            functools.partial(
                self.bot.edit_message_reply_markup, chat_id=chat_id, message_id=message_id
            ),
        )

    async def _send(
        self, chat_id: int, outgoing: list[render.Outgoing]
    ) -> tuple[int | None, int | None, bool]:
        """Send in order; stop at the first message that cannot be sent. Returns the id of the
        message carrying a keyboard (if sent), the index of the reply that failed (None: all
        went out), and whether the failure is final (the user blocked the bot, the chat is
        gone: retrying is no use). A failure loses no answer: it was committed before."""
        keyboard_id = None
        for msg in outgoing:
            try:
                sent = await self._call(
                    "sendMessage",
                    functools.partial(self._send_message, chat_id, msg),
                    repeatable=False,
                )
            except TelegramError as exc:
                log.error("reply not sent (its answer is stored): %s", exc)
                return keyboard_id, msg.reply, isinstance(exc, BadRequest | Forbidden)
            if msg.keyboard is not None:
                keyboard_id = sent["message_id"]
        return keyboard_id, None, False

    async def _send_message(self, chat_id: int, msg: render.Outgoing) -> dict[str, Any]:
        """sendMessage, its answer left as JSON: all we need is the message id, and turning
        Telegram's answer into a `Message` object was a tenth of the bot's time per update.
        Through the same request, rate limiter and errors as `Bot.send_message`."""
        return await self.bot.do_api_request(
            "sendMessage",
            api_kwargs={
                "chat_id": chat_id,
                "text": msg.html,
                "parse_mode": ParseMode.HTML,
                "reply_markup": msg.keyboard_json or msg.keyboard,  # JSON made once per keyboard
                "link_preview_options": NO_PREVIEW_JSON,
            },
        )

    async def _send_checklist(self, chat_id: int) -> None:
        """The checklist PDF of the chat's conversation, as a document. Best effort: if it
        cannot be sent, the owner can ask for it again (the reply before it said how)."""
        current = await asyncio.to_thread(self.storage.current, CHANNEL, chat_id)
        data = current and await asyncio.to_thread(checklist_pdf, current[1], today())
        if not data:
            return
        state = current[1]
        try:
            await self._call(
                "sendDocument",
                functools.partial(
                    self.bot.send_document,
                    chat_id,
                    data,
                    filename=checklist_filename(state),
                    caption=t(
                        "takeaway.checklist.pdf_caption", self.lang, reference=state.reference
                    ),
                ),
                repeatable=False,
            )
        except TelegramError as exc:
            log.error("checklist not sent (it can be asked for again): %s", exc)

    async def _say(self, chat_id: int, text: str) -> None:
        await self._send(chat_id, render.messages([Reply(key="telegram", text=text)]))
