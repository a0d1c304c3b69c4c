"""Webhook mode: a small tornado server of ours in front of the Application (PTB's run_webhook
reads a whole body, up to tornado's 100 MB default, before it looks at the secret).

- An update POST is refused on its headers, before any of its body is read: a wrong or missing
  secret gets 403, a declared body over MAX_BODY 413 (and tornado stops reading any body at
  MAX_BODY). Telegram's updates are a few KB.
- It is answered 200 only once the update is stored (StoredQueue in app.py; 503 otherwise, so
  Telegram delivers it again).
- GET HEALTH_PATH answers 200 `{"status": "ok"}` while the database answers, 503 otherwise: for
  a load balancer's or systemd's probe. It says nothing else about the bot.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer
from tornado.web import Application as WebApplication
from tornado.web import HTTPError, RequestHandler, stream_request_body

from bot.storage import Storage

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
HEALTH_PATH = "/health"  # as the LINE webhook's
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@stream_request_body
class UpdateHandler(RequestHandler):
    def initialize(self, app: Application, secret: str) -> None:
        self.app, self.secret, self.chunks = app, secret.encode(), []

    def prepare(self) -> None:  # headers only: the body has not been read yet
        if self.request.method != "POST":
            raise HTTPError(405)
        given = self.request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret):
            raise HTTPError(403)
        length = self.request.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise HTTPError(413)
        self.request.connection.set_max_body_size(MAX_BODY)

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def post(self) -> None:
        try:
            update = Update.de_json(json.loads(b"".join(self.chunks)), self.app.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise HTTPError(400) from None
        await self.app.update_queue.put(update)  # returns once stored, else HTTPError(503)

    def log_exception(self, typ, value, tb) -> None:  # refusals are expected: no tracebacks
        if not isinstance(value, HTTPError):
            super().log_exception(typ, value, tb)


class HealthHandler(RequestHandler):
    def initialize(self, storage: Storage) -> None:
        self.storage = storage

    async def get(self) -> None:
        try:
            await asyncio.to_thread(self.storage.ping)
        except Exception as exc:  # any database trouble: not healthy
            log.warning("health check failed: %s", exc)
            self.set_status(503)
            self.write({"status": "unavailable"})
            return
        self.write({"status": "ok"})


def server(app: Application, storage: Storage, url_path: str, secret: str) -> HTTPServer:
    path = "/" + url_path.strip("/")
    web = WebApplication(
        [
            (HEALTH_PATH, HealthHandler, {"storage": storage}),
            (path.rstrip("/") + "/?", UpdateHandler, {"app": app, "secret": secret}),
        ]
    )
    return HTTPServer(web, max_body_size=MAX_BODY, idle_connection_timeout=60, body_timeout=30)
