"""A small, standard-library-only LINE Messaging API emulator for end-to-end tests.

It plays both sides of LINE for one channel:

- the API the bot calls (``LINE_API_URL``): reply, push, loading animation, bot info, profile,
  each checking the channel access token and LINE's limits the way the real service does (a
  request it would refuse gets 400 with LINE's error body, so a reply the real service would
  refuse fails the tests);
- the platform that calls the bot's webhook: ``send_text``, ``postback``, ``follow`` … build
  an event with a fresh reply token, sign the body (``x-line-signature``) and POST it to
  ``webhook_url``; they return the HTTP status the bot answered.

    with LineEmulator() as emu:
        emu.webhook_url = "http://127.0.0.1:8090/callback"
        status, event = emu.send_text("U0123…", "こんにちは")
        emu.wait_for_messages("U0123…", 1)

Wire contract (as line-bot-sdk v3 uses it): JSON bodies, ``Authorization: Bearer <token>``;
errors are ``{"message": "...", "details": [{"message": ..., "property": ...}]}`` with the
status code (400 bad request or bad/used/expired reply token, 401 bad token, 404 unknown user,
409 a push retry key already accepted, 429, 5xx).
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .webhook import post
from .webhook import signature as sign_body

# LINE's limits (Messaging API reference: message objects, quick reply, reply/push requests)
MAX_MESSAGES_PER_CALL = 5
MAX_TEXT = 5000
MAX_QUICK_REPLY_ITEMS = 13
MAX_ACTION_LABEL = 20
MAX_POSTBACK_DATA = 300
MAX_DISPLAY_TEXT = 300
LOADING_SECONDS = range(5, 61, 5)
REPLY_TOKEN_TTL_S = 60.0  # a reply token is good for one use within about a minute
ENDPOINTS = {  # (method, path pattern) -> endpoint name used by fault injection and `calls`
    ("POST", r"/v2/bot/message/reply"): "reply",
    ("POST", r"/v2/bot/message/push"): "push",
    ("POST", r"/v2/bot/chat/loading/start"): "loading",
    ("GET", r"/v2/bot/info"): "info",
    ("GET", r"/v2/bot/profile/(?P<user_id>[^/]+)"): "profile",
}
AUTH_FAILED = (
    "Authentication failed. Confirm that the access token in the authorization header is valid."
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []


class _Invalid(Exception):
    """One property that breaks a limit; collected into a 400 like LINE's."""

    def __init__(self, prop: str, message: str) -> None:
        super().__init__(message)
        self.prop, self.message = prop, message


def _units(text: str) -> int:
    """LINE counts text length in UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _check_length(value: Any, prop: str, low: int, high: int) -> None:
    if not isinstance(value, str):
        raise _Invalid(prop, "must be specified")
    if not low <= _units(value) <= high:
        raise _Invalid(prop, f"Length must be between {low} and {high}")


def _check_action(action: Any, prop: str) -> None:
    if not isinstance(action, dict):
        raise _Invalid(prop, "must be specified")
    kind = action.get("type")
    _check_length(action.get("label"), f"{prop}.label", 1, MAX_ACTION_LABEL)
    if kind == "postback":
        _check_length(action.get("data"), f"{prop}.data", 1, MAX_POSTBACK_DATA)
        if action.get("displayText") is not None:
            _check_length(action["displayText"], f"{prop}.displayText", 1, MAX_DISPLAY_TEXT)
    elif kind == "message":
        _check_length(action.get("text"), f"{prop}.text", 1, MAX_DISPLAY_TEXT)
    else:
        raise _Invalid(f"{prop}.type", "unsupported action type for this emulator")


def _check_message(message: Any, prop: str) -> None:
    if not isinstance(message, dict):
        raise _Invalid(prop, "must be specified")
    if message.get("type") != "text":
        raise _Invalid(f"{prop}.type", "unsupported message type for this emulator")
    text = message.get("text")
    _check_length(text, f"{prop}.text", 1, MAX_TEXT)
    if not text.strip():
        raise _Invalid(f"{prop}.text", "must not be blank")
    quick = message.get("quickReply")
    if quick is None:
        return
    items = quick.get("items") if isinstance(quick, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_QUICK_REPLY_ITEMS:
        raise _Invalid(
            f"{prop}.quickReply.items", f"Size must be between 1 and {MAX_QUICK_REPLY_ITEMS}"
        )
    for n, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "action":
            raise _Invalid(f"{prop}.quickReply.items[{n}].type", "must be 'action'")
        _check_action(item.get("action"), f"{prop}.quickReply.items[{n}].action")


def check_messages(messages: Any) -> None:
    """Raise a 400 ApiError, as LINE does, for messages a reply or push would be refused for."""
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES_PER_CALL:
        raise ApiError(
            400,
            "The request body has 1 error(s)",
            [
                {
                    "message": f"Size must be between 1 and {MAX_MESSAGES_PER_CALL}",
                    "property": "messages",
                }
            ],
        )
    errors = []
    for n, message in enumerate(messages):
        try:
            _check_message(message, f"messages[{n}]")
        except _Invalid as bad:
            errors.append({"message": bad.message, "property": bad.prop})
    if errors:
        raise ApiError(400, f"The request body has {len(errors)} error(s)", errors)


class LineEmulator:
    """In-process fake of api.line.me (one channel) and of LINE's webhook delivery, on
    127.0.0.1. Public methods are thread-safe; recorded state is returned as deep copies."""

    def __init__(
        self,
        channel_secret: str = "test-channel-secret-0123456789ab",
        access_token: str = "test-channel-access-token",
        *,
        bot_user_id: str = "U" + "b0" * 16,
        display_name: str = "Test Screening Bot",
    ) -> None:
        self.channel_secret, self.access_token = channel_secret, access_token
        self.bot_info = {
            "userId": bot_user_id,
            "basicId": "@000test",
            "displayName": display_name,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }
        self.webhook_url: str | None = None
        self.reply_token_ttl = REPLY_TOKEN_TTL_S
        self._cond = threading.Condition(threading.RLock())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._tokens: dict[str, dict] = {}  # reply token -> {user, expires, used}
        self._users: dict[str, dict] = {}  # user id -> profile
        self._sent: dict[str, list[dict]] = {}  # user id -> messages received, in order
        self._retry_keys: dict[str, str] = {}  # push X-Line-Retry-Key -> request id
        self._loading: list[dict] = []
        self._faults: list[dict] = []
        self._calls: list[tuple[str, dict]] = []
        self.errors: list[BaseException] = []  # unexpected exceptions inside the emulator

    # ------------------------------------------------------------------ lifecycle

    def start(self, port: int = 0) -> LineEmulator:
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="LineEmulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            connections = list(self._connections)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> LineEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The ``LINE_API_URL`` to give the bot: ``http://127.0.0.1:PORT``."""
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------------ LINE -> bot (webhook)

    @staticmethod
    def new_user_id() -> str:
        return "U" + secrets.token_hex(16)

    def _user(self, user_id: str) -> dict:
        return self._users.setdefault(
            user_id, {"userId": user_id, "displayName": "Test User", "language": "ja"}
        )

    def event(self, user_id: str, kind: str, body: dict | None = None, reply: bool = True) -> dict:
        """A webhook event from a one-to-one chat with a fresh id and (``reply``) a fresh,
        registered reply token. ``body`` is merged in (``{"message": {...}}`` …)."""
        with self._cond:
            self._user(user_id)
            event = {
                "type": kind,
                "mode": "active",
                "timestamp": int(time.time() * 1000),
                "source": {"type": "user", "userId": user_id},
                "webhookEventId": secrets.token_hex(13).upper(),  # 26 characters, like a ULID
                "deliveryContext": {"isRedelivery": False},
                **(body or {}),
            }
            if reply:
                token = secrets.token_hex(16)
                self._tokens[token] = {
                    "user": user_id,
                    "expires": time.monotonic() + self.reply_token_ttl,
                    "used": False,
                }
                event["replyToken"] = token
            return event

    def text_event(self, user_id: str, text: str) -> dict:
        message = {"type": "text", "id": str(secrets.randbelow(10**17)), "text": text}
        message["quoteToken"] = secrets.token_urlsafe(16)
        return self.event(user_id, "message", {"message": message})

    def postback_event(self, user_id: str, data: str) -> dict:
        return self.event(user_id, "postback", {"postback": {"data": data}})

    def deliver(
        self,
        events: list[dict],
        *,
        signature: str | None = None,
        sign: bool = True,
        timeout: float = 30,
    ) -> int:
        """POST the events in one webhook request (signed with the channel secret unless
        ``signature`` is given or ``sign`` is False); returns the HTTP status (0: no answer)."""
        assert self.webhook_url, "set webhook_url first"
        body = {"destination": self.bot_info["userId"], "events": events}
        raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if signature is None and sign:
            signature = sign_body(self.channel_secret, raw)
        return post(self.webhook_url, raw, signature, timeout)

    def send_text(self, user_id: str, text: str) -> tuple[int, dict]:
        """The user types ``text``: (HTTP status of the webhook call, the event)."""
        event = self.text_event(user_id, text)
        return self.deliver([event]), event

    def postback(self, user_id: str, data: str) -> tuple[int, dict]:
        """The user taps a postback action (its displayText shows in the chat, unsent)."""
        event = self.postback_event(user_id, data)
        return self.deliver([event]), event

    def follow(self, user_id: str) -> tuple[int, dict]:
        event = self.event(user_id, "follow", {"follow": {"isUnblocked": False}})
        return self.deliver([event]), event

    def unfollow(self, user_id: str) -> tuple[int, dict]:
        event = self.event(user_id, "unfollow", reply=False)
        return self.deliver([event]), event

    def redeliver(self, *events: dict) -> int:
        """LINE re-sends events the bot did not confirm: same webhookEventId and reply token,
        ``deliveryContext.isRedelivery`` true."""
        again = [copy.deepcopy(e) | {"deliveryContext": {"isRedelivery": True}} for e in events]
        return self.deliver(again)

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self, endpoint: str | None, status: int = 500, times: int = 1, message: str | None = None
    ) -> None:
        """Answer the next ``times`` calls of ``endpoint`` (reply, push, loading, info,
        profile; None: any) with an error, without executing them."""
        message = message or HTTPStatus(status).phrase
        self._add_fault(endpoint, times, status=status, message=message)

    def drop_next(self, endpoint: str | None, times: int = 1, after: bool = False) -> None:
        """Close the connection without a response; ``after=True`` executes the call first
        (the effect happens, the response is lost)."""
        self._add_fault(endpoint, times, drop=True, after=after)

    def expire_reply_tokens(self) -> None:
        """Every reply token issued so far expires now (as after a slow answer)."""
        with self._cond:
            for token in self._tokens.values():
                token["expires"] = 0.0

    def _add_fault(self, endpoint: str | None, times: int, **fault: Any) -> None:
        with self._cond:
            self._faults.append({"endpoint": endpoint, "times": times, **fault})

    def _take_fault(self, endpoint: str) -> dict | None:
        for fault in self._faults:
            if fault["endpoint"] in (None, endpoint):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ inspection

    def messages(self, user_id: str) -> list[dict]:
        """Message objects the user received, in order, each with ``via`` ("reply"/"push")."""
        with self._cond:
            return copy.deepcopy(self._sent.get(user_id, []))

    def calls_to(self, endpoint: str) -> list[dict]:
        """Bodies of every authorised call of ``endpoint`` (also failed and dropped ones)."""
        with self._cond:
            return [copy.deepcopy(body) for name, body in self._calls if name == endpoint]

    @property
    def loading(self) -> list[dict]:
        with self._cond:
            return copy.deepcopy(self._loading)

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every state change)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cond.wait(remaining)
            return result

    def wait_for_messages(self, user_id: str, count: int, timeout: float = 10) -> list[dict]:
        try:
            self.wait_until(lambda: len(self._sent.get(user_id, [])) >= count, timeout)
        except TimeoutError:
            got = [m.get("text") for m in self.messages(user_id)]
            raise TimeoutError(f"expected {count} messages for {user_id}, got {got}") from None
        return self.messages(user_id)

    # ------------------------------------------------------------------ the API

    def _deliver_to(self, user_id: str, messages: list[dict], via: str) -> dict:
        box = self._sent.setdefault(user_id, [])
        sent = []
        for message in messages:
            message_id = str(secrets.randbelow(10**17))
            box.append(copy.deepcopy(message) | {"via": via, "id": message_id})
            sent.append({"id": message_id, "quoteToken": secrets.token_urlsafe(16)})
        return {"sentMessages": sent}

    def _api_reply(self, body: dict, headers: dict, match: dict) -> tuple[int, dict]:
        token = self._tokens.get(str(body.get("replyToken")))
        check_messages(body.get("messages"))
        if token is None or token["used"] or token["expires"] < time.monotonic():
            raise ApiError(400, "Invalid reply token")
        token["used"] = True
        return 200, self._deliver_to(token["user"], body["messages"], "reply")

    def _api_push(self, body: dict, headers: dict, match: dict) -> tuple[int, dict]:
        to = body.get("to")
        check_messages(body.get("messages"))
        if to not in self._users:
            raise ApiError(
                400,
                "The request body has 1 error(s)",
                [{"message": "The property, 'to', is invalid", "property": "to"}],
            )
        key = headers.get("x-line-retry-key")
        if key is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", key):
                raise ApiError(400, "The retry key is invalid")
            if key in self._retry_keys:
                raise ApiError(409, "The retry key is already accepted")
            self._retry_keys[key] = secrets.token_hex(8)
        return 200, self._deliver_to(to, body["messages"], "push")

    def _api_loading(self, body: dict, headers: dict, match: dict) -> tuple[int, dict]:
        seconds = body.get("loadingSeconds", 20)
        if body.get("chatId") not in self._users:
            raise ApiError(400, "The request body has 1 error(s)", [{"property": "chatId"}])
        if seconds not in LOADING_SECONDS:
            raise ApiError(
                400,
                "The request body has 1 error(s)",
                [{"message": "must be a multiple of 5 from 5 to 60", "property": "loadingSeconds"}],
            )
        self._loading.append({"chatId": body["chatId"], "loadingSeconds": seconds})
        return 202, {}

    def _api_info(self, body: dict, headers: dict, match: dict) -> tuple[int, dict]:
        return 200, dict(self.bot_info)

    def _api_profile(self, body: dict, headers: dict, match: dict) -> tuple[int, dict]:
        profile = self._users.get(match["user_id"])
        if profile is None:
            raise ApiError(404, "Not found")
        return 200, dict(profile)


class _Handler(BaseHTTPRequestHandler):
    emu: LineEmulator
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.emu._cond:
            self.emu._connections.add(self.connection)

    def finish(self) -> None:
        with self.emu._cond:
            self.emu._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep tests quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-line-request-id", secrets.token_hex(8))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _error(self, err: ApiError) -> None:
        payload: dict[str, Any] = {"message": err.message}
        if err.details:
            payload["details"] = err.details
        self._reply(err.status, payload)

    def _route(self, method: str, path: str) -> tuple[str, dict] | None:
        for (verb, pattern), name in ENDPOINTS.items():
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return name, match.groupdict()
        return None

    def _serve(self, method: str) -> None:
        emu = self.emu
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self._route(method, urlsplit(self.path).path)
        if route is None:
            return self._error(ApiError(404, "Not found"))
        if self.headers.get("Authorization") != f"Bearer {emu.access_token}":
            return self._error(ApiError(401, AUTH_FAILED))
        name, match = route
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            return self._error(ApiError(400, "The request body could not be parsed as JSON"))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with emu._cond:
            emu._calls.append((name, copy.deepcopy(body)))
            fault = emu._take_fault(name)
            emu._cond.notify_all()
        if fault and fault.get("drop") and not fault["after"]:
            self.close_connection = True
            return None
        if fault and not fault.get("drop"):
            return self._error(ApiError(fault["status"], fault["message"]))
        try:
            with emu._cond:
                status, result = getattr(emu, f"_api_{name}")(body, headers, match)
                emu._cond.notify_all()
        except ApiError as err:
            return self._error(err)
        except Exception as exc:  # a bug in the emulator: make it visible to the test
            emu.errors.append(exc)
            return self._error(ApiError(500, f"Internal Server Error: {exc!r}"))
        if fault:  # dropped after executing: the effect happened, the response is lost
            self.close_connection = True
            return None
        return self._reply(status, result)
