"""`subsidy-bot line`: the screening dialog on LINE, serving the Messaging API webhook.

This module configures and runs the service: settings and their one-line errors, redacted
logging, the SDK's client (checked with the bot info at start), the aiohttp web server with the
signature check, and the delivery core's flusher (unsent replies go by push after a restart).
The events' handling is in bot/line/adapter.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import sqlite3
import sys

import aiohttp
from aiohttp import web
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import ApiException, AsyncApiClient, AsyncMessagingApi, Configuration
from linebot.v3.webhook import WebhookParser
from pydantic import ValidationError

from bot import logsafe
from bot.cli import add_bot_options
from bot.line.adapter import LineBot
from bot.lock import Busy, ProcessLock
from bot.runtime import tune_gc
from bot.settings import Settings
from bot.storage import Storage
from locales import DEFAULT, LANGS, default_lang, t

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a webhook request is small; refuse anything bigger before reading it
SIGNATURE = "x-line-signature"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    parser.add_argument("--path", default="/callback", help="webhook path (default /callback)")
    add_bot_options(parser)


def _fail(key: str, lang: str, **params: str) -> int:
    print(t(key, lang, **params), file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    lang = default_lang()
    try:
        settings = Settings()
    except ValidationError as exc:  # one line naming the setting, never its value
        err = exc.errors()[0]
        field = str(err["loc"][0]).upper() if err.get("loc") else "?"
        return _fail("line.cli.bad_settings", lang, field=field, problem=err["msg"])
    lang = settings.subsidy_lang if settings.subsidy_lang in LANGS else DEFAULT
    secret, token = settings.line_channel_secret, settings.line_channel_access_token
    if secret is None or not secret.get_secret_value().strip():
        return _fail("line.cli.no_secret", lang)
    if token is None or not token.get_secret_value().strip():
        return _fail("line.cli.no_token", lang)
    if not args.path.startswith("/"):
        return _fail("line.cli.bad_settings", lang, field="--path", problem="/...")
    logsafe.setup(
        args.log_level or settings.log_level.upper(),
        [secret.get_secret_value(), token.get_secret_value()],
    )
    if logging.getLogger().level > logging.DEBUG:  # a line per call or per step: not worth it
        for chatty in ("aiohttp.access", "transitions"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    # One process per LINE channel on a database (bot/lock.py); the channel is named by a hash
    # of its token, which never appears in the lock file's name.
    channel = hashlib.sha256(token.get_secret_value().strip().encode()).hexdigest()[:12]
    lock = ProcessLock(settings.subsidy_db, "line", channel)
    try:
        lock.acquire()
    except Busy as busy:
        log.error("%s", t("robustness.lock.busy", lang, pid=busy.pid or "?", path=busy.path))
        return 1
    try:
        return asyncio.run(serve(settings, args, lang))
    except KeyboardInterrupt:
        return 0
    finally:
        lock.release()


def webhook(bot: LineBot, parser: WebhookParser):
    """The webhook route: 400 for a missing or wrong signature (nothing stored, nothing sent),
    200 once every event of the request is committed, 500 if one could not be stored."""

    async def callback(request: web.Request) -> web.Response:
        signature = request.headers.get(SIGNATURE)
        raw = await request.read()
        if not signature:
            log.warning("webhook request without signature refused")
            return web.Response(status=400, text="missing signature")
        try:
            payload = parser.parse(raw.decode("utf-8"), signature, as_payload=True)
        except InvalidSignatureError:  # its message holds the signature: not logged
            log.warning("webhook request with a wrong signature refused")
            return web.Response(status=400, text="bad signature")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            log.warning("malformed webhook request refused: %s", type(exc).__name__)
            return web.Response(status=400, text="bad request")
        if await bot.handle(payload.events or []):
            return web.Response(text="OK")
        return web.Response(status=500, text="not stored; please redeliver")

    return callback


def health(storage: Storage):
    """GET /health: 200 when the database answers (for the proxy or the process supervisor)."""

    async def route(request: web.Request) -> web.Response:
        try:
            await asyncio.to_thread(storage.ping)
        except sqlite3.Error as exc:
            log.error("health check failed: %s", exc)
            return web.json_response({"status": "database unavailable"}, status=503)
        return web.json_response({"status": "ok"})

    return route


async def serve(settings: Settings, args: argparse.Namespace, lang: str) -> int:
    token = settings.line_channel_access_token.get_secret_value()
    secret = settings.line_channel_secret.get_secret_value()
    config = Configuration(host=settings.line_api_url.rstrip("/"), access_token=token)
    async with AsyncApiClient(config) as client:
        api = AsyncMessagingApi(client)
        try:
            info = await api.get_bot_info()
            log.info("LINE account %s (%s)", info.display_name, info.basic_id)
        except ApiException as exc:
            if exc.status in (401, 403):
                return _fail("line.cli.rejected_token", lang)
            log.warning("could not read the bot info (HTTP %s); starting anyway", exc.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Messaging API not reachable (%s); starting anyway", type(exc).__name__)
        storage = Storage(settings.subsidy_db)
        bot = LineBot(storage, api, lang, settings.line_admin_user_ids, on=args.date)
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(args.path, webhook(bot, WebhookParser(secret)))
        app.router.add_get("/health", health(storage))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, args.listen, args.port).start()
        except OSError as exc:
            await runner.cleanup()
            storage.close()
            return _fail("line.cli.failed", lang, problem=str(exc))
        log.info("LINE webhook on http://%s:%d%s", args.listen, args.port, args.path)
        flusher = asyncio.create_task(bot.delivery.run_flusher())
        tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("stopping")
        await bot.delivery.stop()  # no more retrying: the unsent stays in the outbox
        await runner.cleanup()  # no new requests; those in flight finish
        await bot.drain()
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        storage.close()
    return 0
