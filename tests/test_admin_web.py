"""The admin web view: Datasette over the database, read-only, for the actor "admin" only.

In-process checks use Datasette's own test client; the end-to-end test starts
`subsidy-bot admin serve` as a real process and drives Debian's Chromium with selenium. Without
Chromium that test FAILS (CI installs it) unless SKIP_BROWSER_TESTS=1 is set."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from datasette_auth_passwords.utils import hash_password  # the admin extra
from test_admin_report import FUNNEL

from bot.admin import web as admin_web
from bot.admin.database import AdminError
from bot.cli import main

PASSWORD = "県庁-admin-2025"
HASH = hash_password(PASSWORD, iterations=1000)  # few rounds: fast tests, same format
NAME = "subsidy"  # Datasette names the database after the file


@pytest.fixture
def db(filled_db, tmp_path):
    path = tmp_path / f"{NAME}.db"
    shutil.copy(filled_db, path)
    return path


@pytest.fixture
def ds(db, tmp_path, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD_HASH", HASH)
    (tmp_path / "templates").mkdir()
    return admin_web.build(db, "ja", tmp_path / "templates")


def cookie(ds, actor_id="admin") -> dict:
    return {"ds_actor": ds.sign({"a": {"id": actor_id}}, "actor")}


PRIVATE = [
    "/",
    f"/{NAME}",
    f"/{NAME}/conversations",
    f"/{NAME}/events.json",
    f"/{NAME}/events.csv",
    f"/{NAME}/transcript?id=1",
    f"/{NAME}/transcript.json?id=1",
    f"/{NAME}/recent.json",
    f"/{NAME}/funnel.csv",
    f"/{NAME}.json?sql=select+raw_text+from+events",
    "/-/metadata.json",
    "/-/plugins.json",
    "/-/databases.json",
]


@pytest.mark.parametrize("actor", [None, "root", "someone"])
async def test_everything_is_denied_to_other_actors(ds, actor):
    for path in PRIVATE:
        r = await ds.client.get(path, cookies=cookie(ds, actor) if actor else None)
        assert r.status_code == 403, path
        assert "株式会社" not in r.text and "company" not in r.text, path
    login = await ds.client.get("/-/login")
    assert login.status_code == 200 and "ログイン" in login.text


async def test_admin_sees_japanese_reports(ds):
    c = cookie(ds)
    home = await ds.client.get("/", cookies=c)
    assert "脱炭素社会づくり促進事業 判定ボット 管理画面" in home.text
    transcript = (
        await ds.client.get(f"/{NAME}/transcript.json?id=1&_shape=array", cookies=c)
    ).json()
    said = [r["内容"] for r in transcript if r["発言者"] == "利用者"]
    assert said[:4] == ["/start", "株式会社", "製造業", "3億円"]
    assert transcript[-1]["内容"].startswith("【判定】補助対象となる見込みです")
    assert transcript[2]["時刻"] == "2025-04-01 09:00:03" and transcript[2]["扱い"] == "回答"
    funnel = (await ds.client.get(f"/{NAME}/funnel.json?_shape=array", cookies=c)).json()
    assert [(r["到達"], r["回答"], r["離脱"]) for r in funnel] == list(FUNNEL.values())
    reasks = (await ds.client.get(f"/{NAME}/reasks.json?_shape=array", cookies=c)).json()
    assert [sum(r[c] for r in reasks) for c in ("再質問", "分からない", "飛ばした")] == [3, 2, 1]
    days = (
        await ds.client.get(
            f"/{NAME}/outcomes_by_day.json?_shape=array&since=2025-04-02", cookies=c
        )
    ).json()
    assert [(d["日付（開始日）"], d["会話"], d["判定不能"]) for d in days] == [
        ("2025-04-02", 1, 0),
        ("2025-04-03", 2, 1),
    ]
    recent = (
        await ds.client.get(f"/{NAME}/recent.json?_shape=array&limit=2&channel=telegram", cookies=c)
    ).json()
    assert [(r["番号"], r["状態"], r["最後の質問"]) for r in recent] == [
        (5, "判定済み", "更新前のCO2排出量"),
        (4, "中断", "県内の事業所"),
    ]


async def test_nothing_can_write(ds, db):
    meta = admin_web.metadata(NAME, "ja")
    queries = meta["databases"][NAME]["queries"]
    assert set(queries) == {
        "recent",
        "transcript",
        "outcomes_by_day",
        "funnel",
        "reasks",
        "by_reference",
        "outcomes_by_channel",
    }
    assert not any(q.get("write") for q in queries.values())
    plugins = (await ds.client.get("/-/plugins.json", cookies=cookie(ds))).json()
    assert [p["name"] for p in plugins] == ["datasette-auth-passwords"]
    database = ds.get_database(NAME)
    assert database.is_mutable  # read as it changes (not immutable=1), through mode=ro
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await database.execute_fn(lambda conn: conn.execute("DELETE FROM out_events"))
    r = await ds.client.get(f"/{NAME}.json?sql=delete+from+events", cookies=cookie(ds))
    assert r.status_code == 400
    assert sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0] > 0


def test_other_plugins_are_unloaded(db, tmp_path, monkeypatch, capsys):
    """A plugin installed in the same environment (say, one that writes) is not loaded."""
    import types

    from datasette.plugins import pm

    pm.register(types.ModuleType("datasette_some_writer"), "some_writer")
    monkeypatch.setenv("ADMIN_PASSWORD_HASH", HASH)
    admin_web.build(db, "ja", tmp_path)
    assert pm.get_plugin("some_writer") is None
    assert "some_writer" in capsys.readouterr().err
    assert pm.get_plugin("auth_passwords") is not None


def test_serve_refuses_without_a_password_hash(db, monkeypatch, capsys):
    monkeypatch.delenv("ADMIN_PASSWORD_HASH", raising=False)
    assert main(["admin", "serve", "--db", str(db)]) == 1
    assert "ADMIN_PASSWORD_HASH" in capsys.readouterr().err
    monkeypatch.setenv("ADMIN_PASSWORD_HASH", HASH)
    with pytest.raises(AdminError):
        admin_web.build(db.with_name("missing.db"), "ja", db.parent)


# --- the real thing: a served process and a browser ----------------------------------------

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1600",
]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(db, tmp_path):
    port = free_port()
    exe = shutil.which("subsidy-bot", path=str(Path(sys.executable).parent))
    env = os.environ | {"ADMIN_PASSWORD_HASH": HASH}
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen(
        [exe, "admin", "serve", "--db", str(db), "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(base + "/-/login", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"admin serve did not start: {log.read()}")
            time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture
def browser(tmp_path):
    if os.environ.get("SKIP_BROWSER_TESTS") == "1":
        pytest.skip("SKIP_BROWSER_TESTS=1")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            "Chromium is missing: apt-get install -y chromium chromium-driver "
            "(or set SKIP_BROWSER_TESTS=1)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def log_in(driver, base: str, password: str) -> None:
    """Fill and send the login form; return once the answer page has loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/-/login")
    form = driver.find_element(By.TAG_NAME, "form")
    user = driver.find_element(By.ID, "id_username")
    user.clear()
    user.send_keys("admin")
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: not _attached(form))


def _attached(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_enabled()
        return True
    except StaleElementReferenceException:
        return False


def rows_on_page(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "table.rows-and-columns tbody tr")
    return [r.text for r in rows]


def test_browser_login_and_transcript(server, browser, db, tmp_path):
    from selenium.webdriver.common.by import By

    before = hashlib.sha256(db.read_bytes()).hexdigest()
    transcript = f"{server}/{NAME}/transcript?id=1"

    log_in(browser, server, "wrong password")
    assert "ユーザー名またはパスワードが違います。" in browser.page_source
    browser.get(transcript)
    assert rows_on_page(browser) == [] and "株式会社" not in browser.page_source

    log_in(browser, server, PASSWORD)
    home = browser.find_element(By.TAG_NAME, "h1").text
    assert "脱炭素社会づくり促進事業 判定ボット 管理画面" in home
    browser.get(transcript)
    assert browser.find_element(By.TAG_NAME, "h1").text == "会話の記録 🔒"  # 🔒: private
    cells = browser.find_elements(By.CSS_SELECTOR, "table.rows-and-columns th")
    headers = [th.text for th in cells]
    assert headers[:6] == ["順番", "時刻", "発言者", "質問", "扱い", "内容"]
    rows = rows_on_page(browser)
    assert len(rows) == 25
    for said in ("株式会社", "3億円", "30トン", "10トン"):
        assert any(said in r and "利用者" in r for r in rows), said
    assert "【判定】補助対象となる見込みです" in rows[-1]
    browser.save_screenshot(os.environ.get("ADMIN_SCREENSHOT", str(tmp_path / "page.png")))

    for path in (
        f"/{NAME}/transcript?id=1",
        f"/{NAME}/transcript.json?id=1",
        f"/{NAME}/events.csv",
        "/",
    ):
        try:
            with urllib.request.urlopen(server + path, timeout=5) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode()
        assert status in (302, 403), path
        assert "株式会社" not in body and "rows-and-columns" not in body, path
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
