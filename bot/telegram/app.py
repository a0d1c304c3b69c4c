"""`subsidy-bot run`: the screening dialog on Telegram, by long polling or behind a webhook.

This module configures and runs python-telegram-bot: settings and their one-line errors,
redacted logging, AIORateLimiter (429), per-chat ordering (ChatOrder), webhook secret. The
handlers are in bot/telegram/adapter.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import logging
import re
import secrets
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError
from telegram import Update
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    TypeHandler,
)
from telegram.request import BaseRequest
from tornado.web import HTTPError  # what PTB's webhook server turns into an HTTP status

from bot import logsafe
from bot.cli import add_bot_options
from bot.delivery import ChatLocks
from bot.lock import Busy, ProcessLock
from bot.settings import Settings
from bot.storage import Storage, StorageError
from bot.telegram import startup, webhook
from bot.telegram.adapter import TelegramBot
from locales import DEFAULT, LANGS, default_lang, t

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 3  # 429: AIORateLimiter waits retry_after, then tries again
MAX_CONCURRENT_UPDATES = 256
MAX_QUEUED_PER_CHAT = 5  # a person typing fast stays under it; a flood does not
BUSY_WAIT_S = 0.2  # poller: nothing new, updates under way: look again after this
WEBHOOK_STORE_TIMEOUT = 50  # seconds; Telegram gives a webhook about a minute
ALLOWED_UPDATES = ["message", "callback_query"]
TOKEN = re.compile(r"[0-9]+:[A-Za-z0-9_-]{10,}")
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram allows for secret_token


class RunSettings(Settings):
    telegram_webhook_secret: SecretStr | None = None  # webhook mode; generated when unset


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook",
        metavar="URL",
        help="serve a webhook for this public URL (default: long polling)",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        help="webhook: address to listen on (default 127.0.0.1, behind a proxy)",
    )
    parser.add_argument("--port", type=int, default=8080, help="webhook: port (default 8080)")
    parser.add_argument("--url-path", help="webhook: path to serve (default: the URL's path)")
    parser.add_argument(
        "--poll-timeout",
        type=float,
        default=10.0,
        help="long polling: seconds a getUpdates call waits (default 10)",
    )
    add_bot_options(parser)


# --- ordering --------------------------------------------------------------------------------


class ChatOrder(BaseUpdateProcessor):
    """Updates of different chats run concurrently, those of one chat one at a time, in order,
    under the delivery core's chat locks (which its outbox flusher takes too). PTB starts one
    task per update in update order and nothing yields before the lock is requested; asyncio
    locks serve waiters first come, first served.

    Flow control: a chat holds at most MAX_QUEUED_PER_CHAT updates (the one running and those
    waiting behind it). Beyond that an update is refused at once (`refuse(update, first)`, the
    adapter confirms it and, once per burst, asks to wait for the reply), so a flooding chat
    neither grows memory nor keeps the poller from confirming and fetching others' updates.
    A burst ends when the chat has nothing left waiting."""

    def __init__(
        self,
        max_concurrent_updates: int,
        locks: ChatLocks,
        refuse: Callable[[Update, bool], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(max_concurrent_updates)
        self.locks, self.refuse = locks, refuse
        self.queued: Counter[str] = Counter()
        self.told: set[str] = set()
        self.handling: Counter[int] = Counter()  # update ids accepted and not yet done

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        key = str(chat.id)
        # A copy of an update being handled (a webhook's retry) is never refused: noted as
        # handled first, it would make the accepted one a duplicate, never stepped. It waits
        # behind it instead (beyond the bound, as many as Telegram's retries) and is a
        # duplicate itself.
        full = self.queued[key] >= MAX_QUEUED_PER_CHAT and not self.handling[update.update_id]
        if self.refuse is not None and full:
            coroutine.close()  # never run: refused before the dialog
            first = key not in self.told
            self.told.add(key)
            await self.refuse(update, first)
            return
        self.queued[key] += 1
        self.handling[update.update_id] += 1
        try:
            async with self.locks.hold(key):
                await coroutine
        finally:
            self.handling[update.update_id] -= 1
            if not self.handling[update.update_id]:
                del self.handling[update.update_id]
            self.queued[key] -= 1
            if not self.queued[key]:  # the burst is over: forget the chat
                del self.queued[key]
                self.told.discard(key)

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass


# --- running ---------------------------------------------------------------------------------


def file_url(api_url: str) -> str:
    """The file URL beside a Bot API URL: .../bot -> .../file/bot (Telegram's and the local
    Bot API server's layout)."""
    head, sep, tail = api_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else api_url


class StoredQueue(asyncio.Queue):
    """The update queue for webhook mode: PTB's webhook handler answers Telegram with 200 once
    `put` returns, so `put` returns only when the update is stored (or needed no storing).
    A crash before that, a storage failure or a commit that takes too long leaves the update
    unconfirmed (503), and Telegram delivers it again."""

    def __init__(self, bot: TelegramBot) -> None:
        super().__init__()
        self.bot = bot

    async def put(self, item: object) -> None:
        if not isinstance(item, Update):
            await super().put(item)
            return
        stored = self.bot.expect(item.update_id)  # before queueing: the handler may be quick
        await super().put(item)
        try:  # never hold Telegram's request forever
            ok = await asyncio.wait_for(asyncio.shield(stored), WEBHOOK_STORE_TIMEOUT)
        except TimeoutError:
            ok = False
        if not ok:
            raise HTTPError(HTTPStatus.SERVICE_UNAVAILABLE)


def advance(
    inflight: dict[int, asyncio.Future[bool]], offset: int | None
) -> tuple[int | None, bool]:
    """The next getUpdates offset: past every fetched update up to the first one not (yet)
    stored. Updates passed, and those whose storing failed (they must be fetched and handled
    again), leave `inflight`. Returns (offset, whether any storing failed)."""
    failed = False
    for update_id in sorted(inflight):
        future = inflight[update_id]
        if not future.done():
            break
        if not future.result():
            failed = True
            break
        offset = update_id + 1
        del inflight[update_id]
    for update_id, future in list(inflight.items()):
        if future.done() and not future.result():
            failed = True
            del inflight[update_id]
    return offset, failed


def build(
    settings: Settings,
    token: str,
    bot: TelegramBot,
    request: BaseRequest | None = None,
    limiter: bool = True,
) -> Application:
    """The Application `run` serves; `request` and `limiter=False` are for the bench (bench/)."""
    builder = (
        ApplicationBuilder()
        .token(token)
        .update_queue(StoredQueue(bot))
        .concurrent_updates(ChatOrder(MAX_CONCURRENT_UPDATES, bot.delivery.locks, bot.refuse))
    )
    if limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=RATE_LIMIT_RETRIES))
    if request is not None:
        builder = builder.request(request).get_updates_request(request)
    if settings.telegram_api_url:  # any server speaking the Bot API (local server, emulator)
        builder = builder.base_url(settings.telegram_api_url).base_file_url(
            file_url(settings.telegram_api_url)
        )
    app = builder.build()
    app.add_handler(TypeHandler(Update, bot.on_update))
    app.add_error_handler(bot.on_error)
    return app


async def poll(app: Application, bot: TelegramBot, timeout: float) -> None:
    """Long polling that confirms updates to Telegram only once they are stored.

    PTB's Updater confirms a batch with its next getUpdates, before the handlers ran, so a
    crash in between would lose those messages. Here the next offset moves past a batch only
    when every update of it is committed (or needed no storing); a redelivery after a crash
    is recognised by its update id in storage. Sending may still be under way meanwhile, and
    different chats proceed concurrently through ChatOrder.

    The poller never waits for a whole batch: it fetches again at once, from the first update
    not yet stored; updates already under way come back in that answer and are skipped. When
    nothing new came, it waits a moment (BUSY_WAIT_S) or until one is stored. So a chat whose
    updates are slow (flooding, its replies being retried) holds up no other chat."""
    stop = _stop_on_signals()
    tasks: set[asyncio.Task] = set()
    inflight: dict[int, asyncio.Future[bool]] = {}
    offset, pause = None, 0.0
    await startup.call(app.initialize)  # getMe; `async with` then finds it done
    async with app:
        await startup.call(lambda: app.bot.delete_webhook(drop_pending_updates=False))
        await bot.on_start(app)
        await app.start()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                fetch = asyncio.ensure_future(
                    app.bot.get_updates(
                        offset=offset,
                        timeout=dt.timedelta(seconds=timeout),
                        allowed_updates=ALLOWED_UPDATES,
                    )
                )
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    break
                try:
                    updates = fetch.result()
                except RetryAfter as exc:
                    after = exc.retry_after
                    await _pause(
                        stop, after.total_seconds() if isinstance(after, dt.timedelta) else after
                    )
                    continue
                except (NetworkError, TimedOut, Conflict) as exc:  # back off, keep polling
                    pause = min(max(pause * 2, 0.5), 30.0)
                    log.warning("getUpdates failed (%s); retrying in %.1fs", exc, pause)
                    await _pause(stop, pause)
                    continue
                new = [u for u in updates if u.update_id not in inflight]
                for update in new:
                    inflight[update.update_id] = bot.expect(update.update_id)
                    task = asyncio.ensure_future(
                        app.update_processor.process_update(update, app.process_update(update))
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                waiting = [f for f in inflight.values() if not f.done()]
                if waiting and not new:  # only what is under way came back: not so fast
                    first = asyncio.FIRST_COMPLETED
                    await asyncio.wait([*waiting, stopping], timeout=BUSY_WAIT_S, return_when=first)
                offset, failed = advance(inflight, offset)
                if not failed:
                    pause = 0.0
                else:  # storage trouble: fetch the unstored ones again, a little later
                    pause = min(max(pause * 2, 0.5), 30.0)
                    log.warning("updates not stored; fetching them again in %.1fs", pause)
                    await _pause(stop, pause)
        finally:
            stopping.cancel()
            await bot.on_stop(app)  # no more sending nor retrying: shutdown stays prompt
            await asyncio.gather(*tasks, return_exceptions=True)  # commit what was fetched
            offset, _ = advance(inflight, offset)
            if offset is not None:
                with contextlib.suppress(TelegramError):  # confirm the last batch
                    await app.bot.get_updates(offset=offset, timeout=0)
            await app.stop()


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but no longer once a signal asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_webhook(
    app: Application, bot: TelegramBot, args: argparse.Namespace, secret: str
) -> None:
    """Webhook mode (bot/telegram/webhook.py): listen first, then tell Telegram where."""
    stop = _stop_on_signals()
    url_path = args.url_path if args.url_path is not None else urlsplit(args.webhook).path
    await startup.call(app.initialize)
    async with app:
        http = webhook.server(app, bot.storage, url_path, secret)
        http.listen(args.port, args.listen)
        try:
            await startup.call(
                lambda: app.bot.set_webhook(
                    args.webhook,
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=False,
                )
            )
            await bot.on_start(app)
            await app.start()
            await stop.wait()
        finally:
            http.stop()
            await bot.on_stop(app)
            if app.running:
                await app.stop()


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    lang = default_lang()
    try:
        settings = RunSettings()
    except ValidationError as exc:  # names the field; a SecretStr never shows its value
        err = exc.errors()[0]
        field = "_".join(str(p) for p in err["loc"]).upper()
        return _fail(t("telegram.cli.bad_settings", lang, field=field, problem=err["msg"]))
    lang = settings.subsidy_lang if settings.subsidy_lang in LANGS else DEFAULT
    token = (
        settings.telegram_bot_token.get_secret_value().strip()
        if settings.telegram_bot_token
        else ""
    )
    if not token:
        return _fail(t("telegram.cli.no_token", lang))
    if not TOKEN.fullmatch(token):
        return _fail(t("telegram.cli.bad_token", lang))
    secret = ""
    if args.webhook:
        given = settings.telegram_webhook_secret
        secret = given.get_secret_value() if given else secrets.token_urlsafe(32)
        if not WEBHOOK_SECRET.fullmatch(secret):
            return _fail(t("telegram.cli.bad_secret", lang))
    level = args.log_level or settings.log_level.upper()
    if level not in logging.getLevelNamesMapping():
        return _fail(t("telegram.cli.bad_settings", lang, field="LOG_LEVEL", problem=level))
    logsafe.setup(level, [token, secret])

    lock = ProcessLock(settings.subsidy_db, "telegram", token.partition(":")[0])
    try:
        lock.acquire()
    except Busy as busy:
        log.error("%s", t("robustness.lock.busy", lang, pid=busy.pid or "?", path=busy.path))
        return 1
    except OSError as exc:
        log.error("%s", t("telegram.cli.failed", lang, problem=exc))
        return 1
    try:
        return _run(args, settings, token, secret, lang)
    finally:
        lock.release()


def _run(args: argparse.Namespace, settings: Settings, token: str, secret: str, lang: str) -> int:
    try:
        storage = Storage(settings.subsidy_db)
    except StorageError as exc:
        log.error("%s", exc.text(lang))
        return 1
    except Exception as exc:  # unwritable path...: one line, no traceback
        log.error("%s", t("telegram.cli.failed", lang, problem=exc))
        return 1
    bot = TelegramBot(storage, lang, settings.admin_user_ids, args.date)
    app = build(settings, token, bot)
    try:
        if args.webhook:
            asyncio.run(serve_webhook(app, bot, args, secret))
        else:
            asyncio.run(poll(app, bot, args.poll_timeout))
    except InvalidToken:
        log.error("%s", t("telegram.cli.rejected_token", lang))
        return 1
    except TelegramError as exc:
        log.error("%s", t("telegram.cli.failed", lang, problem=exc))
        return 1
    except Exception:  # through logging, so the traceback is redacted too
        log.exception("%s", t("telegram.cli.failed", lang, problem=""))
        return 1
    finally:
        storage.close()
    return 0
