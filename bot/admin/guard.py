"""What the admin web view refuses before Datasette sees the request.

- Tool pages that anyone could call: `/-/password-tool` (datasette-auth-passwords hashes any
  posted password, ~0.65 s of CPU each: an anonymous way to stall the server) and
  `/-/allow-debug`. Nobody needs them here (`subsidy-bot admin hash-password` makes hashes), so
  they answer 403 to everyone, before any work.
- Password guessing: after FREE_ATTEMPTS failed logins from one client address, each further
  failure locks that address out for twice as long as the last (LOCK_S up to LOCK_MAX_S); while
  locked, a login answers 429 with Retry-After without checking the password (no hashing). A
  success clears the count. Failures are what the password plugin answers with a page (200)
  rather than the redirect that sets the login cookie.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from locales import t

BLOCKED = ("/-/password-tool", "/-/allow-debug")
LOGIN = "/-/login"
FREE_ATTEMPTS = 5
LOCK_S, LOCK_MAX_S = 30.0, 3600.0


@dataclass
class _Client:
    failures: int = 0
    locked_until: float = 0.0


class Guard:
    """ASGI middleware around Datasette's app."""

    def __init__(self, app, lang: str | None, clock: Callable[[], float] = time.monotonic):
        self.app, self.lang, self.clock = app, lang, clock
        self.clients: dict[str, _Client] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"
        if path in BLOCKED or path.removesuffix(".json") in BLOCKED:
            return await _plain(send, 403, t("robustness.web.forbidden", self.lang))
        if path != LOGIN or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        address = (scope.get("client") or ("?",))[0]
        client = self.clients.setdefault(address, _Client())
        wait = client.locked_until - self.clock()
        if wait > 0:
            seconds = int(wait) + 1
            text = t("robustness.web.locked", self.lang, seconds=seconds)
            return await _plain(send, 429, text, [(b"retry-after", str(seconds).encode())])

        status = 0

        async def watch(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status in (301, 302, 303):  # the plugin redirects only when the password was right
            self.clients.pop(address, None)
        elif status:
            client.failures += 1
            over = client.failures - FREE_ATTEMPTS
            if over >= 0:
                client.locked_until = self.clock() + min(LOCK_S * 2**over, LOCK_MAX_S)


async def _plain(send, status: int, text: str, headers: list | None = None) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})
