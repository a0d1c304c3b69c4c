"""A small, standard-library-only Telegram Bot API emulator for end-to-end tests.

The real bot (a python-telegram-bot ``Application``) talks to it over real HTTP::

    with BotApiEmulator() as emu:
        app = (ApplicationBuilder().token(emu.token)
               .base_url(emu.api_url).base_file_url(emu.file_url).build())
        ...
        emu.send_text(42, "/start")
        emu.wait_for_bot_messages(42, 1)

Wire contract (as python-telegram-bot 22 uses it): requests are ``POST /bot<TOKEN>/<method>``
with a form-urlencoded body (PTB json-dumps every non-string value), JSON bodies, multipart
bodies and GET query strings are accepted too. Responses are ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`` with the same HTTP
status code, which is what PTB maps to its exceptions (429 -> RetryAfter, 400 -> BadRequest,
401/404 -> InvalidToken, 409 -> Conflict, other -> NetworkError).
"""

from __future__ import annotations

import asyncio
import copy
import email.parser
import email.policy
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from html.parser import HTMLParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Parameters whose values are plain strings even when they look like JSON ("123", "true").
_STRING_PARAMS = frozenset(
    "text parse_mode language_code callback_query_id url secret_token ip_address caption"
    " inline_message_id business_connection_id message_effect_id action".split()
)
# Tags Telegram accepts with parse_mode=HTML.
_HTML_TAGS = frozenset(
    "b strong i em u ins s strike del span tg-spoiler a code pre blockquote tg-emoji".split()
)
_BUTTON_ACTIONS = (
    "callback_data url web_app login_url switch_inline_query switch_inline_query_current_chat"
    " switch_inline_query_chosen_chat copy_text callback_game pay".split()
)
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """Raised inside a method handler to produce an ``ok: false`` response."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters


def _bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _HtmlChecker(HTMLParser):
    """Rejects what Telegram's HTML parse mode rejects (unknown or unbalanced tags)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.plain: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in _HTML_TAGS:
            raise _bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise _bad_request(f'can\'t parse entities: Unexpected end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.plain.append(data)


def plain_text(text: str, parse_mode: str | None) -> str:
    """The text as Telegram stores it: HTML markup parsed away (and validated)."""
    if (parse_mode or "").lower() != "html":
        return text
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.stack:
        raise _bad_request(f"can't parse entities: Can't find end tag \"{checker.stack[-1]}\"")
    return "".join(checker.plain)  # convert_charrefs already unescaped &lt; etc.


def _check_text(text: Any, parse_mode: str | None) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _bad_request("message text is empty")
    plain = plain_text(text, parse_mode)
    if not plain.strip():
        raise _bad_request("message text is empty")
    if _utf16_len(plain) > MAX_TEXT_LENGTH:
        raise _bad_request("message is too long")
    return plain


def _check_markup(markup: Any) -> dict | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup  # ReplyKeyboardMarkup / ReplyKeyboardRemove / ForceReply: accepted as-is
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request('field "inline_keyboard" must be an Array of Arrays')
    for button in itertools.chain.from_iterable(rows):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise _bad_request('can\'t parse inline keyboard button: Field "text" must be a String')
        if not any(key in button for key in _BUTTON_ACTIONS):
            raise _bad_request(
                "can't parse inline keyboard button: "
                "Text buttons are unallowed in the inline keyboard"
            )
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
            raise _bad_request("BUTTON_DATA_INVALID")
    return markup


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that went away (a bot process killed mid-request) is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _decode_value(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    """Request parameters from the query string plus a form, JSON or multipart body."""
    params: dict[str, Any] = {k: _decode_value(k, v) for k, v in parse_qsl(query)}
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return params
    if ctype == "application/json":
        params.update(json.loads(body.decode("utf-8")))
    elif ctype == "multipart/form-data":
        header = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + body)
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            if part.get_filename():
                params[name] = part.get_payload(decode=True)  # uploaded file: raw bytes
                params[f"{name}_filename"] = part.get_filename()
            else:
                params[name] = _decode_value(name, part.get_content().strip("\r\n"))
    else:  # PTB's default: application/x-www-form-urlencoded
        params.update(
            (k, _decode_value(k, v))
            for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        )
    return params


class BotApiEmulator:
    """In-process fake of api.telegram.org for one bot, served on 127.0.0.1.

    All public methods are thread-safe. Recorded state (``calls``, ``callback_answers``,
    ``commands``, ``bot_messages()``) is returned as deep copies.
    """

    def __init__(
        self,
        token: str = "123456789:TEST-emulator-token",
        *,
        username: str = "test_screening_bot",
        first_name: str = "Test Bot",
    ) -> None:
        self.token = token
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 123456789
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._cond = threading.Condition(threading.RLock())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = False
        # Called (in the emulator's thread) with the update ids a getUpdates offset confirms:
        # tests use it to check what the bot had stored at that moment.
        self.on_confirm: Callable[[list[int]], None] | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._next_update_id = 100_000
        self._reused_up_to = 0  # ids up to this were handed out before (restart_update_ids)
        self._pending: list[dict] = []  # unconfirmed updates, in update_id order
        self._forced: list[dict] = []  # redelivered copies, returned regardless of offset
        self._history: dict[int, dict] = {}  # every update ever injected, by update_id
        self._poll_generation = 0
        self._messages: dict[int, dict[int, dict]] = {}  # chat_id -> message_id -> record
        self._next_message_id: dict[int, int] = {}
        self._users: dict[int, dict] = {}
        self._queries: dict[str, dict] = {}  # callback_query id -> {"answered": bool, ...}
        self._query_ids = itertools.count(1)
        self._faults: list[dict] = []
        self._latency: dict[int, float] = {}  # chat_id -> seconds each sendMessage takes
        self._calls: list[tuple[str, dict]] = []
        self._callback_answers: list[dict] = []
        self._commands: dict[str, list[dict]] = {}
        self.webhook: dict | None = None
        self.errors: list[BaseException] = []  # unexpected exceptions inside the emulator

    # ------------------------------------------------------------------ lifecycle

    def start(self, port: int = 0) -> BotApiEmulator:
        """Serve on 127.0.0.1 (``port=0``: a free port) in a daemon thread."""
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._stopping = False
        self._server = _Server(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="BotApiEmulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake long polls and close open connections."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
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

    def __enter__(self) -> BotApiEmulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """PTB ``base_url`` form (PTB appends the token): ``http://127.0.0.1:PORT/bot``."""
        return f"{self.base_url}/bot"

    @property
    def file_url(self) -> str:
        """PTB ``base_file_url`` form: ``http://127.0.0.1:PORT/file/bot``."""
        return f"{self.base_url}/file/bot"

    # ------------------------------------------------------------------ injecting updates

    def _user(
        self, user_id: int, first_name: str | None = None, language_code: str | None = None
    ) -> dict:
        user = self._users.setdefault(
            user_id,
            {"id": user_id, "is_bot": False, "first_name": "Test User", "language_code": "ja"},
        )
        if first_name is not None:
            user["first_name"] = first_name
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def _chat(self, chat_id: int) -> dict:
        user = self._users.get(chat_id)
        return {
            "id": chat_id,
            "type": "private",
            "first_name": user["first_name"] if user else "Test User",
        }

    def _new_message_id(self, chat_id: int) -> int:
        self._next_message_id[chat_id] = self._next_message_id.get(chat_id, 0) + 1
        return self._next_message_id[chat_id]

    def inject(self, update: dict) -> int:
        """Queue a raw update (``update_id`` is assigned); returns the update_id."""
        with self._cond:
            self._next_update_id += 1
            update = {**copy.deepcopy(update), "update_id": self._next_update_id}
            self._history[update["update_id"]] = update
            reused = update["update_id"] <= self._reused_up_to  # whatever the bot's offset
            (self._forced if reused else self._pending).append(update)
            self._cond.notify_all()
            return update["update_id"]

    def send_text(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        first_name: str = "Test User",
        language_code: str | None = "ja",
    ) -> int:
        """A user writes ``text`` in the private chat ``chat_id``; returns the update_id."""
        with self._cond:
            user = self._user(chat_id if user_id is None else user_id, first_name, language_code)
            message = {
                "message_id": self._new_message_id(chat_id),
                "date": int(time.time()),
                "chat": self._chat(chat_id),
                "from": dict(user),
                "text": text,
            }
            if text.startswith("/"):
                command = text.split(maxsplit=1)[0]
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
                ]
            self._messages.setdefault(chat_id, {})[message["message_id"]] = {
                "message_id": message["message_id"],
                "chat_id": chat_id,
                "from_bot": False,
                "text": text,
                "date": message["date"],
                "from": message["from"],
            }
            return self.inject({"message": message})

    def press(self, chat_id: int, message_id: int, data: str, user_id: int | None = None) -> int:
        """A user presses an inline button (``data`` is not checked against the keyboard, so
        stale or forged presses are possible); returns the update_id."""
        with self._cond:
            record = self._messages.get(chat_id, {}).get(message_id)
            if record is None or not record["from_bot"]:
                raise ValueError(f"no bot message {message_id} in chat {chat_id}")
            query_id = f"{self.bot_user['id']}{next(self._query_ids):08d}"
            self._queries[query_id] = {"answered": False, "chat_id": chat_id, "data": data}
            return self.inject(
                {
                    "callback_query": {
                        "id": query_id,
                        "from": dict(self._user(chat_id if user_id is None else user_id)),
                        "chat_instance": str(-abs(chat_id) * 7919),
                        "data": data,
                        "message": self._message_object(record),
                    }
                }
            )

    def restart_update_ids(self, next_id: int) -> None:
        """Like Telegram after a week without updates: the next update gets `next_id` again,
        an id already handed out (to any chat). It is delivered whatever the bot's offset."""
        with self._cond:
            self._reused_up_to = max(self._reused_up_to, self._next_update_id)
            self._next_update_id = next_id - 1

    def redeliver(self, update_id: int) -> None:
        """Deliver an already injected update again, with the same update_id, on the next
        getUpdates regardless of the bot's offset (like Telegram re-sending it)."""
        with self._cond:
            self._forced.append(copy.deepcopy(self._history[update_id]))
            self._cond.notify_all()

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str | None,
        status: int = 429,
        retry_after: int = 1,
        times: int = 1,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (``None``: any method) with an error.
        429 carries ``parameters.retry_after``; the call is not executed."""
        if description is None:
            phrase = HTTPStatus(status).phrase
            description = f"{phrase}: retry after {retry_after}" if status == 429 else phrase
        self._add_fault(
            method, times, status=status, retry_after=retry_after, description=description
        )

    def drop_next(self, method: str | None, times: int = 1, after: bool = False) -> None:
        """Close the connection without any response for the next ``times`` calls of
        ``method``. ``after=True`` executes the call first (the response is what gets lost)."""
        self._add_fault(method, times, drop=True, after=after)

    def slow_chat(self, chat_id: int, seconds: float) -> None:
        """Every sendMessage to this chat takes `seconds` to answer (Telegram paces a chat at
        about one message a second), others are unaffected."""
        with self._cond:
            self._latency[chat_id] = seconds

    def clear_faults(self) -> None:
        """Forget the injected faults not yet taken (the outage is over)."""
        with self._cond:
            self._faults.clear()

    @property
    def faults_pending(self) -> int:
        """Injected faults not yet taken by a call."""
        with self._cond:
            return sum(f["times"] for f in self._faults)

    def _add_fault(self, method: str | None, times: int, **fault: Any) -> None:
        with self._cond:
            self._faults.append(
                {"method": method.lower() if method else None, "times": times, **fault}
            )

    def _take_fault(self, method: str) -> dict | None:
        for fault in self._faults:
            if fault["method"] in (None, method.lower()):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ inspection

    def bot_messages(self, chat_id: int) -> list[dict]:
        """Messages the bot sent to ``chat_id``, in order. Each is a dict with ``message_id,
        chat_id, text, parse_mode, reply_markup, date, edited, edit_date, deleted`` and
        ``history`` (earlier versions, oldest first: ``{text, parse_mode, reply_markup}``)."""
        with self._cond:
            records = self._messages.get(chat_id, {}).values()
            return copy.deepcopy([r for r in records if r["from_bot"]])

    def wait_until(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        """Block until ``predicate()`` is truthy (re-checked on every emulator state change;
        it runs with the emulator lock held and may call its methods); returns its value.
        Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (result := predicate()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._cond.wait(remaining)
            return result

    def wait_for_bot_messages(self, chat_id: int, count: int, timeout: float = 10) -> list[dict]:
        """Block until the bot has sent at least ``count`` messages to ``chat_id``."""
        try:
            self.wait_until(lambda: len(self.bot_messages(chat_id)) >= count, timeout)
            return self.bot_messages(chat_id)
        except TimeoutError:
            got = [m["text"] for m in self.bot_messages(chat_id)]
            raise TimeoutError(
                f"expected {count} bot messages in chat {chat_id}, got {got}"
            ) from None

    async def await_bot_messages(self, chat_id: int, count: int, timeout: float = 10) -> list[dict]:
        """``wait_for_bot_messages`` for async tests (does not block the event loop)."""
        return await asyncio.to_thread(self.wait_for_bot_messages, chat_id, count, timeout)

    async def await_until(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        return await asyncio.to_thread(self.wait_until, predicate, timeout)

    @property
    def calls(self) -> list[tuple[str, dict]]:
        """Every authorised request as ``(method, params)``, including failed/dropped ones."""
        with self._cond:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[dict]:
        return [params for name, params in self.calls if name.lower() == method.lower()]

    @property
    def callback_answers(self) -> list[dict]:
        with self._cond:
            return copy.deepcopy(self._callback_answers)

    @property
    def commands(self) -> dict[str, list[dict]]:
        """setMyCommands state keyed by language_code (``""`` = default)."""
        with self._cond:
            return copy.deepcopy(self._commands)

    @property
    def pending_update_count(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._forced)

    # ------------------------------------------------------------------ request handling

    def _handle(self, method: str, params: dict) -> tuple[Any, Callable[[], None] | None]:
        """Run a Bot API method; returns (result, callback to run once the response is sent)."""
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            raise ApiError(404, "Not Found")
        if method.lower() == "getupdates":
            return handler(params)
        with self._cond:
            result = handler(params)
            self._cond.notify_all()
            return result, None

    def _message_object(self, record: dict) -> dict:
        message = {
            "message_id": record["message_id"],
            "date": record["date"],
            "chat": self._chat(record["chat_id"]),
            "from": dict(self.bot_user if record["from_bot"] else record["from"]),
            "text": plain_text(record["text"], record.get("parse_mode")),
        }
        markup = record.get("reply_markup")
        if markup and "inline_keyboard" in markup:  # Telegram only echoes inline keyboards
            message["reply_markup"] = markup
        if record.get("edit_date"):
            message["edit_date"] = record["edit_date"]
        return message

    def _api_getme(self, params: dict) -> dict:
        return dict(self.bot_user)

    def _api_getupdates(self, params: dict) -> tuple[list[dict], Callable[[], None]]:
        offset = params.get("offset")
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if self.webhook:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            if offset is not None:
                offset = int(offset)
                if offset < 0:  # only the last -offset updates survive
                    self._pending = self._pending[offset:]
                else:  # confirm everything below offset
                    confirmed = [u["update_id"] for u in self._pending if u["update_id"] < offset]
                    self._pending = [u for u in self._pending if u["update_id"] >= offset]
                    if confirmed and self.on_confirm is not None:
                        self.on_confirm(confirmed)
            self._poll_generation += 1
            generation = self._poll_generation
            self._cond.notify_all()  # terminates any other long poll (409 below)
            while not (self._pending or self._forced) and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                if self._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
            forced = self._forced[:limit]
            seen = {u["update_id"] for u in forced}
            batch = forced + [u for u in self._pending if u["update_id"] not in seen]
            batch = sorted(batch[:limit], key=lambda u: u["update_id"])

        def delivered() -> None:  # redelivered copies are handed out once
            with self._cond:
                self._forced = [u for u in self._forced if not any(u is f for f in forced)]

        return copy.deepcopy(batch), delivered

    def _chat_id(self, params: dict) -> int:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str) and re.fullmatch(r"-?\d+", chat_id):
            chat_id = int(chat_id)
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _bad_request("chat not found" if chat_id else "chat_id is empty")
        return chat_id

    def _store_bot_message(self, chat_id: int, text: str, params: dict, **extra: Any) -> dict:
        record = {
            "message_id": self._new_message_id(chat_id),
            "chat_id": chat_id,
            "from_bot": True,
            "text": text,
            "parse_mode": params.get("parse_mode"),
            "reply_markup": _check_markup(params.get("reply_markup")),
            "date": int(time.time()),
            "edited": False,
            "edit_date": None,
            "history": [],
            "deleted": False,
            **extra,
        }
        self._messages.setdefault(chat_id, {})[record["message_id"]] = record
        return record

    def _api_sendmessage(self, params: dict) -> dict:
        chat_id = self._chat_id(params)
        _check_text(params.get("text"), params.get("parse_mode"))
        return self._message_object(self._store_bot_message(chat_id, params["text"], params))

    def _api_senddocument(self, params: dict) -> dict:
        """A file uploaded with the request (multipart): kept as ``document`` (file_name, bytes)
        on the message record; the caption is its text."""
        chat_id = self._chat_id(params)
        upload = params.get("document")
        if not isinstance(upload, bytes) or not upload:
            raise _bad_request("there is no document in the request")
        caption = params.get("caption") or ""
        document = {"file_name": params.get("document_filename"), "bytes": upload}
        record = self._store_bot_message(chat_id, caption, params, document=document)
        message = self._message_object(record)
        del message["text"]
        message["caption"] = plain_text(caption, record["parse_mode"])
        message["document"] = {
            "file_id": f"doc-{record['message_id']}",
            "file_unique_id": f"u-doc-{record['message_id']}",
            "file_name": record["document"]["file_name"],
            "mime_type": "application/pdf",
            "file_size": len(upload),
        }
        return message

    def _editable(self, params: dict) -> dict:
        if "inline_message_id" in params:
            raise _bad_request("inline messages are not supported by the emulator")
        chat_id = self._chat_id(params)
        record = self._messages.get(chat_id, {}).get(_int_or_none(params.get("message_id")))
        if record is None or record.get("deleted"):
            raise _bad_request("message to edit not found")
        if not record["from_bot"]:
            raise _bad_request("message can't be edited")
        return record

    def _edit(self, record: dict, text: str, parse_mode: str | None, markup: dict | None) -> dict:
        old = {k: record[k] for k in ("text", "parse_mode", "reply_markup")}
        if (old["text"], old["parse_mode"], old["reply_markup"]) == (text, parse_mode, markup):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        record["history"].append(old)
        record.update(
            text=text,
            parse_mode=parse_mode,
            reply_markup=markup,
            edited=True,
            edit_date=int(time.time()),
        )
        return self._message_object(record)

    def _api_editmessagetext(self, params: dict) -> dict:
        record = self._editable(params)
        _check_text(params.get("text"), params.get("parse_mode"))
        markup = _check_markup(params.get("reply_markup"))
        return self._edit(record, params["text"], params.get("parse_mode"), markup)

    def _api_editmessagereplymarkup(self, params: dict) -> dict:
        record = self._editable(params)
        markup = _check_markup(params.get("reply_markup"))
        return self._edit(record, record["text"], record["parse_mode"], markup)

    def _api_deletemessage(self, params: dict) -> bool:
        chat_messages = self._messages.get(self._chat_id(params), {})
        record = chat_messages.get(_int_or_none(params.get("message_id")))
        if record is None or record.get("deleted"):
            raise _bad_request("message to delete not found")
        record["deleted"] = True
        return True

    def _api_answercallbackquery(self, params: dict) -> bool:
        query = self._queries.get(str(params.get("callback_query_id")))
        if query is None or query["answered"]:
            raise _bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(params.get("text") or "") > 200:
            raise _bad_request("MESSAGE_TOO_LONG")
        query["answered"] = True
        self._callback_answers.append(dict(params))
        return True

    def _api_sendchataction(self, params: dict) -> bool:
        self._chat_id(params)
        return True

    def _api_setmycommands(self, params: dict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for cmd in commands:
            if not _COMMAND_RE.match(str(cmd.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[params.get("language_code") or ""] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _api_getmycommands(self, params: dict) -> list[dict]:
        return copy.deepcopy(self._commands.get(params.get("language_code") or "", []))

    def _api_deletemycommands(self, params: dict) -> bool:
        self._commands.pop(params.get("language_code") or "", None)
        return True

    def _api_setwebhook(self, params: dict) -> bool:
        self.webhook = dict(params) if params.get("url") else None
        return True

    def _api_deletewebhook(self, params: dict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
            self._forced.clear()
        return True

    def _api_getwebhookinfo(self, params: dict) -> dict:
        return {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    def _api_close(self, params: dict) -> bool:
        return True

    def _api_logout(self, params: dict) -> bool:
        return True


class _Handler(BaseHTTPRequestHandler):
    emu: BotApiEmulator
    protocol_version = "HTTP/1.1"  # keep-alive, like api.telegram.org

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: avoid Nagle + delayed-ACK 40 ms stalls
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
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _reply(self, status: int, payload: dict) -> bool:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            return True
        except OSError:  # client went away (e.g. a cancelled long poll)
            self.close_connection = True
            return False

    def _error(self, status: int, description: str, parameters: dict | None = None) -> None:
        payload: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            payload["parameters"] = parameters
        self._reply(status, payload)

    def _serve(self) -> None:
        emu = self.emu
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        match = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)/?", url.path)
        if match is None:
            return self._error(404, "Not Found")
        token, method = match.groups()
        if token != emu.token:
            return self._error(401, "Unauthorized")
        try:
            params = parse_params(self.headers.get("Content-Type", ""), body, url.query)
        except ValueError:
            return self._error(400, "Bad Request: can't parse request parameters")
        with emu._cond:
            emu._calls.append((method, copy.deepcopy(params)))
            fault = emu._take_fault(method)
            emu._cond.notify_all()
            latency = emu._latency.get(_int_or_none(params.get("chat_id")) or 0, 0.0)
        if latency and method.lower() == "sendmessage":
            time.sleep(latency)
        if fault and fault.get("drop") and not fault["after"]:
            self.close_connection = True
            return None
        if fault and not fault.get("drop"):
            extra = {"retry_after": fault["retry_after"]} if fault["status"] == 429 else None
            return self._error(fault["status"], fault["description"], extra)
        try:
            result, on_sent = emu._handle(method, params)
        except ApiError as err:
            return self._error(err.status, err.description, err.parameters)
        except Exception as exc:  # a bug in the emulator: make it visible to the test
            emu.errors.append(exc)
            return self._error(500, f"Internal Server Error: {exc!r}")
        if fault:  # drop after executing: the effect happened, the response is lost
            self.close_connection = True
            return None
        if self._reply(200, {"ok": True, "result": result}) and on_sent:
            on_sent()
        return None
