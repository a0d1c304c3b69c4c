"""The Telegram adapter's handlers: one update in, under its chat's lock (see ChatOrder).

A dialog input goes through `Storage.handle` (dedup on the update id, step, commit); then the
chat's previous keyboard is removed, the replies are sent, and the new keyboard message and the
update id are noted (bot/telegram/chats.py). Adapter commands (/privacy, /delete, and for admins
/stats /recent /show) never reach the dialog; everything else does, as text or a button value.

Language: SUBSIDY_LANG for everyone (the Telegram client's language is not used). The service
is the prefecture's, in Japanese; an English deployment sets SUBSIDY_LANG=en. The command menu
itself is set in both languages and Telegram shows the one matching the client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import BotCommand, CallbackQuery, LinkPreviewOptions, Message, Update
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, NetworkError, TelegramError
from telegram.ext import Application, ContextTypes

from bot.checklist_pdf import checklist_pdf, today
from bot.checklist_pdf import filename as checklist_filename
from bot.settings import MAX_INPUT_CHARS
from bot.storage import Storage, normalize_reference
from bot.telegram import chats, render
from dialogs.engine import CHECKLIST_KEY, step
from dialogs.io import Choice, Reply, State, UserInput
from locales import LANGS, t

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SEND_ATTEMPTS = 4  # network errors and 5xx: 3 retries, 0.5 s, 1 s, 2 s apart
BACKOFF_S = 0.5
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


def _number(text: str) -> int | None:
    """A positive number in ASCII digits (str.isdigit also takes ², ①, full-width digits)."""
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


class TelegramBot:
    """The handlers, with what they share: storage, language, admin ids, evaluation date."""

    def __init__(
        self, storage: Storage, lang: str, admins: frozenset[int], on: dt.date | None = None
    ) -> None:
        self.storage, self.lang, self.admins = storage, lang, admins
        self.step = functools.partial(step, on=on)
        self.app: Application | None = None
        self._stored: dict[int, asyncio.Event] = {}

    @property
    def bot(self):
        return self.app.bot

    async def on_start(self, app: Application) -> None:
        """post_init: the command menu in each language (the default in SUBSIDY_LANG)."""
        self.app = app
        for code in ("", *LANGS):
            menu = [BotCommand(c, t(f"telegram.commands.{c}", code or self.lang)) for c in COMMANDS]
            await self._try(
                "setMyCommands",
                functools.partial(app.bot.set_my_commands, menu, language_code=code or None),
            )
        log.info("bot @%s ready; resuming from %s", app.bot.username, self.storage.path)

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A bug or a database failure: log it, and tell the user rather than go silent.
        Such failures come before the commit (storage, step), which then kept nothing: sending
        the message again is the right advice."""
        uid = update.update_id if isinstance(update, Update) else None
        log.error("update %s failed", uid, exc_info=context.error)
        if isinstance(update, Update) and update.effective_chat is not None and self.app:
            await self._say(update.effective_chat.id, t("telegram.error", self.lang))

    def expect(self, update_id: int) -> asyncio.Event:
        """An event set once the update is stored (or needs no storing): the poller confirms
        an update to Telegram only then, so a crash before the commit loses nothing."""
        return self._stored.setdefault(update_id, asyncio.Event())

    def _release(self, update_id: int) -> None:
        event = self._stored.pop(update_id, None)
        if event is not None:
            event.set()

    async def on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            chat, user = update.effective_chat, update.effective_user
            if chat is None or user is None or chat.type != ChatType.PRIVATE:
                return  # a screening is personal: private chats only
            if update.callback_query is not None:
                await self._on_press(update, update.callback_query)
            elif update.message is not None:
                await self._on_message(update, update.message)
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
        data, chat_id = query.data or "", update.effective_chat.id
        if data in (DELETE_YES, DELETE_NO):
            return await self._on_delete(update, query, erase=data == DELETE_YES)
        marks = await asyncio.to_thread(chats.marks, self.storage, chat_id)
        message_id = query.message.message_id if query.message else None
        if message_id is None or message_id != marks.keyboard_message_id:
            # An old keyboard (its removal failed, or a second press raced the first): say so
            # and change nothing. Its buttons go too, so it cannot happen again.
            await self._try(
                "answerCallbackQuery",
                functools.partial(query.answer, t("telegram.stale_button", self.lang)),
            )
            if message_id is not None:
                await self._remove_keyboard(chat_id, message_id)
            return
        await self._turn(update, UserInput(choice=data), query, marks)

    async def _turn(
        self,
        update: Update,
        inp: UserInput,
        query: CallbackQuery | None = None,
        marks: chats.ChatMarks | None = None,
    ) -> None:
        """One dialog input: store (commit) first, then send."""
        chat_id, user_id = update.effective_chat.id, update.effective_user.id
        if marks is None:
            marks = await asyncio.to_thread(chats.marks, self.storage, chat_id)
        uid = f"{self.bot.id}:{update.update_id}"  # update ids are per bot; a new bot restarts
        handled = await asyncio.to_thread(
            self.storage.handle, CHANNEL, chat_id, user_id, uid, inp, self.step, self.lang
        )
        self._release(update.update_id)  # committed: safe to confirm before sending
        if query is not None:
            await self._try("answerCallbackQuery", query.answer)
        if handled.duplicate and update.update_id <= (marks.done_update_id or -1):
            log.info("update %s was redelivered; its replies were sent already", uid)
            return
        # A duplicate not marked done may have crashed before sending: send it (at most twice).
        if marks.keyboard_message_id is not None:
            await self._remove_keyboard(chat_id, marks.keyboard_message_id)
        keyboard_id, complete = await self._send(chat_id, render.messages(handled.replies))
        if complete and any(r.key == CHECKLIST_KEY for r in handled.replies):
            complete = await self._send_checklist(chat_id, handled.state)
        await asyncio.to_thread(
            chats.record,
            self.storage,
            chat_id,
            handled.conversation_id,
            keyboard_id,
            update.update_id if complete else None,
        )

    async def _on_delete(self, update: Update, query: CallbackQuery, erase: bool) -> None:
        chat_id = update.effective_chat.id
        await self._try("answerCallbackQuery", query.answer)
        if erase:
            marks = await asyncio.to_thread(chats.marks, self.storage, chat_id)
            if marks.keyboard_message_id is not None:
                await self._remove_keyboard(chat_id, marks.keyboard_message_id)
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

        if command == "stats":
            text = await asyncio.to_thread(admin_report.stats_text, self.storage, self.lang)
        elif command == "recent":
            limit = min(_number(arg) or 10, 50)
            text = await asyncio.to_thread(admin_report.recent_text, self.storage, self.lang, limit)
        else:  # a conversation number, or a reference number as read out
            key = arg.lstrip("#")
            if _number(key) is None and normalize_reference(key) is None:
                return await self._say(chat_id, t("telegram.admin.show_usage", self.lang))
            text = await asyncio.to_thread(admin_report.show_text, self.storage, key, self.lang)
            text = text or t("admin.show.not_found", self.lang, id=key)
        await self._send(chat_id, render.preformatted(text))

    # --- Bot API calls ---

    async def _call(self, what: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """A Bot API call, retried with back-off on network errors and 5xx (a bad request is
        not retried; 429 is AIORateLimiter's, which waits as told)."""
        for attempt in range(SEND_ATTEMPTS):
            try:
                return await make()
            except BadRequest:
                raise
            except NetworkError as exc:  # includes timeouts and 5xx
                if attempt + 1 == SEND_ATTEMPTS:
                    raise
                delay = BACKOFF_S * 2**attempt
                log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

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

    async def _send(self, chat_id: int, outgoing: list[render.Outgoing]) -> tuple[int | None, bool]:
        """Send in order; stop at the first message that cannot be sent. Returns the id of the
        message carrying a keyboard (if sent) and whether everything went out. A failure loses
        no answer: it was committed before."""
        keyboard_id = None
        for msg in outgoing:
            try:
                sent = await self._call(
                    "sendMessage",
                    functools.partial(
                        self.bot.send_message,
                        chat_id,
                        msg.html,
                        parse_mode=ParseMode.HTML,
                        reply_markup=msg.keyboard,
                        link_preview_options=NO_PREVIEW,
                    ),
                )
            except TelegramError as exc:
                log.error("reply not sent (its answer is stored): %s", exc)
                return keyboard_id, False
            if msg.keyboard is not None:
                keyboard_id = sent.message_id
        return keyboard_id, True

    async def _send_checklist(self, chat_id: int, state: State | None) -> bool:
        """The checklist PDF as a document, after the dialog's "here it is". A redelivered
        request has no new state: the conversation's current one is the same."""
        if state is None:
            _, state = await asyncio.to_thread(self.storage.current, CHANNEL, chat_id)
        data = await asyncio.to_thread(checklist_pdf, state, today())
        if data is None:
            return True
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
            )
        except TelegramError as exc:
            log.error("checklist not sent (it can be asked for again): %s", exc)
            return False
        return True

    async def _say(self, chat_id: int, text: str) -> None:
        await self._send(chat_id, render.messages([Reply(key="telegram", text=text)]))
