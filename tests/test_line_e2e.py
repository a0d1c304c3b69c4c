"""The real `subsidy-bot line` process against the LINE emulator over HTTP on 127.0.0.1.

Most tests share one bot process (module scope), each with its own user; restarts, logs and
settings start their own. Every wait is on an observable event (a message reaching the user, a
webhook answer); where there is none (the port opening) a short poll with a deadline. The
emulator refuses what LINE would refuse (labels over 20 characters, more than 13 quick replies
or 5 messages a call, used or expired reply tokens), so every turn here is one LINE accepts."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.request
from contextlib import closing

import pytest

try:  # tests/ is not a package: importable either way
    from tests.e2e.botproc import ROOT, query
    from tests.e2e.lineproc import LineProcess, LineUser
    from tests.e2e.scripts import BY_BUTTONS, BY_TEXT, TITLES
    from tests.line_emulator import LineEmulator
except ImportError:
    from e2e.botproc import ROOT, query
    from e2e.lineproc import LineProcess, LineUser
    from e2e.scripts import BY_BUTTONS, BY_TEXT, TITLES
    from line_emulator import LineEmulator

from bot.storage import stored_state
from dialogs.checklist import checklist_text
from dialogs.engine import step
from dialogs.io import State, UserInput
from locales import t
from rules.clock import today

ADMIN = "U" + "ad" * 16
EVAL = __import__("datetime").date(2024, 6, 1)  # the bot runs with --date 2024-06-01


@pytest.fixture(scope="module")
def emu():
    with LineEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


@pytest.fixture(scope="module")
def bot(emu, tmp_path_factory):
    work = tmp_path_factory.mktemp("line")
    process = LineProcess(emu, work, work / "bot.db", LINE_ADMIN_USER_IDS=ADMIN)
    with process:
        yield process
    assert process.proc.returncode == 0, process.output


@pytest.fixture
def user(emu, bot):
    """A new user who has added the account (follow): welcome and the first question."""
    u = LineUser(emu)
    u.follow()
    return u


@pytest.fixture
def own_emu():
    with LineEmulator() as emulator:
        yield emulator
    assert emulator.errors == []


def conversations(db, user_id: str) -> list[tuple]:
    return query(
        db,
        "SELECT channel, status, verdict_status FROM conversations WHERE chat_id = ?",
        user_id,
    )


def inputs(db, user_id: str) -> list[str]:
    sql = (
        "SELECT e.raw_text FROM events e JOIN conversations c ON c.id = e.conversation_id"
        " WHERE c.chat_id = ? AND e.direction = 'in' ORDER BY e.id"
    )
    return [r[0] for r in query(db, sql, user_id)]


def console_texts(db, user_id: str, inputs: list[UserInput]) -> list[list[str]]:
    """What the console (the same pure step) answers to these inputs, turn by turn, in a
    conversation with the same reference number as the user's (storage draws it at random)."""
    [(reference,)] = query(db, "SELECT reference FROM conversations WHERE chat_id = ?", user_id)
    state, turns = State(lang="ja", reference=reference), []
    for inp in inputs:
        state, replies = step(state, inp, on=EVAL)
        turns.append([r.text for r in replies])
    return turns


def assert_same_texts(got: list[dict], expected: list[str]) -> None:
    """LINE's messages say what the console says; a list of the full choice names may follow
    a question whose quick reply shows short labels."""
    assert len(got) == len(expected), [m["text"] for m in got]
    for message, text in zip(got, expected, strict=True):
        assert message["text"] == text or message["text"].startswith(text + "\n\n")


# --- the dialog ---------------------------------------------------------------------------


def test_follow_gives_the_welcome_and_the_first_question(bot, emu):
    u = LineUser(emu)
    [first] = u.follow()
    assert first["via"] == "reply"
    assert first["text"].startswith(t("dialog.welcome", "ja").splitlines()[0])
    assert "事業者の種類" in first["text"]
    labels = [i["action"]["label"] for i in first["quickReply"]["items"]]
    assert labels[:2] == ["会社", "個人事業主"] and len(labels) <= 13
    assert "1. 会社（株式会社・有限会社・合同会社など）" in first["text"]  # the full names
    assert conversations(bot.db, u.id) == [("line", "active", None)]
    assert emu.loading and emu.loading[-1]["chatId"] == u.id


@pytest.mark.parametrize("outcome", BY_TEXT)
def test_whole_dialog_by_typed_text(bot, user, outcome):
    script = BY_TEXT[outcome]
    inputs = [UserInput(choice="/start")] + [UserInput(text=s) for s in script]
    expected = console_texts(bot.db, user.id, inputs)
    for n, text in enumerate(script, 1):
        got = user.say(text, 2 if n == len(script) else 1)
        assert_same_texts(got, expected[n])
    assert got[-1]["text"].startswith(TITLES[outcome])
    assert conversations(bot.db, user.id) == [("line", "finished", outcome)]


@pytest.mark.parametrize("outcome", BY_BUTTONS)
def test_whole_dialog_by_quick_reply_postbacks(bot, user, outcome):
    """Telegram's button script: each press is a tap on the quick reply item whose displayText
    is the button's label (the quick reply itself shows the short label)."""
    taken = [UserInput(choice="/start")]
    for action, value, count in BY_BUTTONS[outcome]:
        if action == "press":
            tapped = user.quick()[value]
            assert tapped["type"] == "postback" and len(tapped["label"]) <= 20
            got = user.tap(value, count)
            taken.append(UserInput(choice=tapped["data"]))
        else:
            got = user.say(value, count)
            taken.append(UserInput(text=value))
        assert_same_texts(got, console_texts(bot.db, user.id, taken)[-1])
    assert got[-1]["text"].startswith(TITLES[outcome])
    assert {"回答確認", "最初から", "戻る", "ヘルプ"} <= set(user.quick())
    assert conversations(bot.db, user.id) == [("line", "finished", outcome)]


def test_the_checklist_comes_as_text_with_the_verdicts_quick_reply_kept(bot, user):
    script = BY_TEXT["ineligible"]
    for n, text in enumerate(script, 1):
        user.say(text, 2 if n == len(script) else 1)
    got = user.tap(t("takeaway.buttons.checklist", "ja"))
    [(cid,)] = query(bot.db, "SELECT id FROM conversations WHERE chat_id = ?", user.id)
    with closing(sqlite3.connect(bot.db)) as conn:
        state = stored_state(conn, cid)
    text = "\n".join(m["text"] for m in got)
    assert text.startswith(t("takeaway.checklist.ready", "ja"))
    assert checklist_text(state, today()) in text and state.reference in text
    assert "quickReply" in got[-1] and t("dialog.buttons.restart", "ja") in user.quick()


def test_commands_from_the_quick_reply_are_words_the_dialog_knows(user):
    user.tap("会社")
    [back] = user.tap("戻る")
    assert "事業者の種類" in back["text"]
    [summary] = user.tap("回答確認")
    assert summary["text"].startswith(t("dialog.summary_empty", "ja"))  # and the reference


def test_an_old_postback_changes_nothing(bot, emu, user):
    user.tap("会社")
    before = inputs(bot.db, user.id)
    status, _ = emu.postback(user.id, "entity_type:sole_proprietor")  # from the first question
    assert status == 200
    [notice] = emu.wait_for_messages(user.id, 3)[2:]
    assert t("dialog.reask.stale_button", "ja") in notice["text"] and "業種" in notice["text"]
    state = query(bot.db, "SELECT answers_json FROM conversations WHERE chat_id = ?", user.id)
    assert '"company"' in state[0][0] and len(inputs(bot.db, user.id)) == len(before) + 1


def test_stickers_get_a_polite_word_and_unfollow_is_logged(bot, emu, user):
    sticker = {"type": "sticker", "id": "1", "packageId": "446", "stickerId": "1988"}
    sticker |= {"stickerResourceType": "STATIC", "quoteToken": "q"}
    assert emu.deliver([emu.event(user.id, "message", {"message": sticker})]) == 200
    [word] = emu.wait_for_messages(user.id, 2)[1:]
    assert word["text"] == t("line.text_only", "ja")
    assert emu.unfollow(user.id)[0] == 200
    beacon = {"beacon": {"hwid": "d41d8cd98f", "type": "enter"}}
    assert emu.deliver([emu.event(user.id, "beacon", beacon)]) == 200
    assert len(inputs(bot.db, user.id)) == 1  # only the follow went into the dialog


# --- signature, redelivery, sending -------------------------------------------------------


def test_missing_or_wrong_signature_is_refused_and_nothing_happens(bot, emu):
    u = LineUser(emu)
    event = emu.text_event(u.id, "株式会社")
    assert emu.deliver([event], sign=False) == 400
    assert emu.deliver([event], signature="d3Jvbmc=") == 400
    other = LineEmulator(channel_secret="not-the-channel-secret")
    other.webhook_url = emu.webhook_url
    assert other.deliver([event]) == 400
    assert conversations(bot.db, u.id) == [] and u.messages == []
    assert emu.deliver([event]) == 200  # the same event, signed as LINE signs it
    assert emu.deliver([]) == 200  # the console's "Verify": no events, signed
    health = f"http://127.0.0.1:{bot.port}/health"
    with urllib.request.urlopen(health, timeout=10) as answer:
        assert answer.status == 200 and json.loads(answer.read()) == {"status": "ok"}


def test_redelivered_event_changes_nothing(bot, emu, user):
    user.say("株式会社")
    before = len(user.messages)
    assert emu.redeliver(user.last_event) == 200
    user.say("製造業")  # the next turn comes after anything the redelivery could have sent
    assert len(user.messages) == before + 1
    assert inputs(bot.db, user.id).count("株式会社") == 1


def test_expired_reply_token_goes_by_push(emu, user):
    emu.reply_token_ttl = 0
    try:
        [got] = user.say("株式会社")
    finally:
        emu.reply_token_ttl = 60
    assert got["via"] == "push" and "業種" in got["text"]
    emu.fail_next("reply", 500)
    [got] = user.say("製造業")
    assert got["via"] == "push" and "資本金" in got["text"]
    emu.fail_next("push", 503, times=2)  # retried with the same retry key
    emu.reply_token_ttl = 0
    try:
        [got] = user.say("３億円")
    finally:
        emu.reply_token_ttl = 60
    assert got["via"] == "push"
    keys = emu.calls_to("push")
    assert len(keys) >= 3


def test_the_200_waits_for_the_commit(bot, emu, user):
    """LINE redelivers a webhook request until it gets 200 (redelivery on): the bot must answer
    only after the commit. The test holds the database's write lock; the request must wait."""
    event = emu.text_event(user.id, "株式会社")
    lock = sqlite3.connect(bot.db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        assert emu.deliver([event], timeout=1.5) == 0  # no answer while the commit waits
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    emu.wait_for_messages(user.id, 2)
    assert emu.redeliver(event) == 200  # what LINE does after no answer
    assert inputs(bot.db, user.id).count("株式会社") == 1


def test_two_users_at_once_never_get_each_others_replies(bot, emu):
    users = [LineUser(emu) for _ in range(2)]
    scripts = [BY_TEXT["eligible"], BY_TEXT["ineligible"]]
    errors = []

    def run(u: LineUser, script: list[str]) -> None:
        try:
            u.follow()
            for n, text in enumerate(script, 1):
                u.say(text, 2 if n == len(script) else 1)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(users, scripts, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    for u, script, outcome in zip(users, scripts, ("eligible", "ineligible"), strict=True):
        inputs = [UserInput(choice="/start")] + [UserInput(text=s) for s in script]
        expected = console_texts(bot.db, u.id, inputs)
        flat = [text for turn in expected for text in turn]
        assert_same_texts(u.messages, flat)
        assert conversations(bot.db, u.id) == [("line", "finished", outcome)]


# --- privacy, deletion, admin -------------------------------------------------------------


def test_privacy_and_delete_in_words_with_a_confirmation(bot, emu, user):
    user.say("株式会社")
    [privacy] = user.say("プライバシー")
    assert privacy["text"] == t("line.privacy", "ja")
    [confirm] = user.say("データ削除")
    assert confirm["text"] == t("line.delete.confirm", "ja")
    [kept] = user.tap("やめる")
    assert kept["text"] == t("line.delete.kept", "ja")
    assert len(conversations(bot.db, user.id)) == 1
    user.say("データ削除")
    [done] = user.tap("消去する")
    assert done["text"] == t("line.delete.done", "ja", conversations=1)
    assert conversations(bot.db, user.id) == []
    assert query(bot.db, "SELECT count(*) FROM conversations WHERE user_id = ?", user.id) == [(0,)]


def test_admin_commands_for_line_admins_only(bot, emu):
    admin, other = LineUser(emu, ADMIN), LineUser(emu)
    other.follow()  # at least one conversation to report on, whatever ran before
    [report] = admin.say("/stats")
    assert t("admin.stats.total", "ja", n=0).split("0")[0] in report["text"]
    [recent] = admin.say("/recent 5")
    assert "LINE" in recent["text"]
    [not_admin] = other.say("/stats")
    assert not_admin["text"] != report["text"]
    assert conversations(bot.db, ADMIN) == []  # reports are not conversations


def admin(db, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SUBSIDY_"))}
    env |= {"SUBSIDY_DB": str(db), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "bot.cli", "admin", *args, "--lang", "en"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_admin_tools_see_line_conversations_by_user_id(bot, user):
    user.say("株式会社")
    listed = admin(bot.db, "list", "--channel", "line")
    assert "LINE" in listed and "Telegram" not in listed
    exported = [
        json.loads(line)
        for line in admin(bot.db, "export", "--raw", "--format", "jsonl").splitlines()
    ]
    assert any(row.get("channel") == "line" for row in exported)
    assert "1" in admin(bot.db, "delete-user", user.id)  # the id as LINE sent it
    assert conversations(bot.db, user.id) == []


# --- processes ------------------------------------------------------------------------------


def test_kill_9_after_the_200_and_a_restart_resumes(own_emu, tmp_path):
    emu, db = own_emu, tmp_path / "bot.db"
    u = LineUser(emu)
    with LineProcess(emu, tmp_path, db) as first:
        u.follow()
        u.say("株式会社")
        emu.fail_next("reply", 500, times=100)  # nothing can be sent: the answer is only stored
        emu.fail_next("push", 500, times=100)
        assert emu.send_text(u.id, "製造業")[0] == 200  # committed
        emu.wait_until(lambda: len(emu.calls_to("push")) >= 1)
        first.kill()
    emu._faults.clear()
    sent = len(u.messages)
    with LineProcess(emu, tmp_path, db) as second:
        [resumed] = emu.wait_for_messages(u.id, sent + 1)[sent:]  # the flusher pushes it
        assert resumed["via"] == "push" and "資本金" in resumed["text"]
        got = u.say("３億円")
        assert "県税" in got[0]["text"]
    assert second.proc.returncode == 0
    assert inputs(db, u.id) == ["[/start]", "株式会社", "製造業", "３億円"]


def test_sigterm_while_pushes_fail_stops_promptly_and_the_next_start_sends(own_emu, tmp_path):
    emu, db = own_emu, tmp_path / "bot.db"
    u = LineUser(emu)
    first = LineProcess(emu, tmp_path, db).start()
    try:
        u.follow()
        emu.fail_next("reply", 500, times=100)  # LINE is failing: every push is retried
        emu.fail_next("push", 500, times=100)
        assert emu.send_text(u.id, "株式会社")[0] == 200  # committed
        emu.wait_until(lambda: len(emu.calls_to("push")) >= 2)  # retrying now
        assert first.stop(timeout=5) == 0, first.output  # no waiting out the retries
    finally:
        first.kill()
    emu._faults.clear()
    sent = len(u.messages)
    with LineProcess(emu, tmp_path, db):
        [resumed] = emu.wait_for_messages(u.id, sent + 1)[sent:]  # kept in the outbox
        assert "主な業種" in resumed["text"]
    assert inputs(db, u.id) == ["[/start]", "株式会社"]


def test_tokens_never_reach_the_logs(own_emu, tmp_path):
    emu = own_emu
    with LineProcess(emu, tmp_path, tmp_path / "bot.db", LOG_LEVEL="DEBUG") as process:
        u = LineUser(emu)
        u.follow()
        emu.fail_next("reply", 400)
        u.say("株式会社")
    assert process.output  # it did log
    assert emu.access_token not in process.output
    assert emu.channel_secret not in process.output


@pytest.mark.parametrize(
    "unset", ["LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN"], ids=["secret", "token"]
)
def test_missing_settings_are_one_line_and_exit_2(own_emu, tmp_path, unset):
    process = LineProcess(own_emu, tmp_path, tmp_path / "bot.db", **{unset: None})
    process.start(ready=None)
    assert process.proc.wait(30) == 2
    process._reader.join(5)
    assert unset in process.output and len(process.output.strip().splitlines()) == 1


def test_a_rejected_access_token_is_one_line_and_exit_2(own_emu, tmp_path):
    process = LineProcess(
        own_emu, tmp_path, tmp_path / "bot.db", LINE_CHANNEL_ACCESS_TOKEN="not-the-token"
    )
    process.start(ready=None)
    assert process.proc.wait(30) == 2
    process._reader.join(5)
    assert "LINE_CHANNEL_ACCESS_TOKEN" in process.output.strip().splitlines()[-1]
    assert "not-the-token" not in process.output


def test_contact_names_the_office_and_the_reference_number(bot, user):
    """「県の担当者に相談したい」: how to reach the office, the number to quote, nothing sent."""
    [(ref,)] = query(bot.db, "SELECT reference FROM conversations WHERE chat_id = ?", user.id)
    contact, again = user.say("県の担当者に相談したい", 2)  # then the question again
    assert "気候変動対策課" in contact["text"] and ref in contact["text"]
    assert "送ることはありません" in contact["text"] and "事業者の種類" in again["text"]
