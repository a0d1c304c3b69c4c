"""The admin web view under attack (issue 13, item 5): the tool pages are refused to anonymous
users before any work, password guessing is slowed by a growing lockout."""

from __future__ import annotations

import re

import httpx
import pytest
from test_admin_web import PASSWORD, db, ds, server  # noqa: F401  (fixtures)

from bot.admin import guard
from bot.admin.guard import FREE_ATTEMPTS, LOCK_S, Guard
from locales import t


def login(client: httpx.Client, password: str) -> httpx.Response:
    form = client.get("/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', form.text).group(1)
    return client.post(
        "/-/login",
        data={"username": "admin", "password": password, "csrftoken": token},
        follow_redirects=False,
    )


def test_served_view_refuses_tools_and_locks_out_guessing(server):  # noqa: F811
    with httpx.Client(base_url=server, timeout=30) as client:
        tool = client.post("/-/password-tool", data={"password": "x" * 50})
        assert tool.status_code == 403 and "hashed" not in tool.text.lower()
        assert client.get("/-/allow-debug").status_code == 403
        assert client.get("/-/allow-debug?actor={}&allow={}").status_code == 403
        for _ in range(FREE_ATTEMPTS):
            assert login(client, "wrong").status_code == 200  # the form again, with its error
        locked = login(client, "wrong")
        assert locked.status_code == 429
        assert 0 < int(locked.headers["retry-after"]) <= LOCK_S + 1
        assert login(client, PASSWORD).status_code == 429  # not even the right one, for now


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_lockout_doubles_and_a_success_clears_it(ds):  # noqa: F811
    clock = Clock()
    app = Guard(ds.app(), "ja", clock)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:

        async def attempt(password: str) -> int:
            form = await client.get("/-/login")
            token = re.search(r'name="csrftoken" value="([^"]+)"', form.text).group(1)
            r = await client.post(
                "/-/login", data={"username": "admin", "password": password, "csrftoken": token}
            )
            return r.status_code

        for _ in range(FREE_ATTEMPTS):
            assert await attempt("wrong") == 200
        clock.now += LOCK_S - 1
        assert await attempt(PASSWORD) == 429
        clock.now += 1
        assert await attempt("wrong") == 200  # unlocked; this failure locks for twice as long
        clock.now += 2 * LOCK_S - 1
        assert await attempt(PASSWORD) == 429
        clock.now += 1
        assert await attempt(PASSWORD) == 302  # logged in: the count starts over
        client.cookies.clear()
        assert await attempt("wrong") == 200
    other = app.clients.get("192.0.2.1")
    assert other is not None and other.failures == 1


async def test_locked_page_says_when_to_come_back(ds):  # noqa: F811
    app = Guard(ds.app(), "ja", Clock())
    app.clients["192.0.2.9"] = guard._Client(failures=9, locked_until=Clock.now + 12.5)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        r = await client.post("/-/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 429 and r.text == t("robustness.web.locked", "ja", seconds=13)


@pytest.mark.parametrize("path", ["/-/password-tool", "/-/allow-debug", "/-/allow-debug.json"])
async def test_tool_pages_cost_nothing(ds, path):  # noqa: F811
    transport = httpx.ASGITransport(app=Guard(ds.app(), "en"))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        r = await client.post(path, data={"password": "p"})
    assert r.status_code == 403 and r.text == t("robustness.web.forbidden", "en")
