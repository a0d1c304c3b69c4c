import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlite_utils import Database

from bot.delivery import Channel, Delivery, Inbound, Sent
from bot.storage import (
    MIGRATIONS,
    REF_MARK,
    SCHEMA_VERSION,
    Storage,
    StorageError,
    _m5_line_channel,
    migrate,
)
from dialogs.io import Choice, Interpretation, Reply, State, UserInput

VERDICT = {
    "status": "eligible",
    "reasons": ["r1"],
    "missing": [],
    "ruleset": "tochigi-2025",
    "warnings": [],
}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)  # strictly increasing, like real time
        return self.now


def fake_step(state: State, user_input: UserInput) -> tuple[State, list[Reply]]:
    """Records the text as an answer; 'done' gives a verdict, 'cancel' cancels, 'boom' fails."""
    text = user_input.raw
    if text == "boom":
        raise RuntimeError("boom")
    new = state.model_copy(deep=True)
    if text == "cancel":
        new.phase, new.last = "cancelled", Interpretation(outcome="command", command="cancel")
        return new, [Reply(key="cancelled", text="bye")]
    if text == "done":
        new.phase, new.verdict, new.awaiting = "verdict", VERDICT, None
        new.last = Interpretation(outcome="command", command="done")
        return new, [Reply(key="verdict", text="ok", verdict=VERDICT)]
    new.phase = "asking"
    new.answers["texts"] = [*new.answers.get("texts", []), text]
    new.history.append(f"q{len(new.history)}")
    new.last = Interpretation(question=state.awaiting, outcome="answer", value={"t": text})
    new.awaiting = f"q{len(new.history)}"
    return new, [
        Reply(key="ack", text=f"got {text}"),
        Reply(key="ask", text="next?", choices=[Choice(value="y", label="はい")]),
    ]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with Storage(tmp_path / "data" / "bot.db", clock=clock) as s:
        yield s


class Named(Channel):
    def __init__(self, name: str) -> None:
        self.name = name


def send(store, text, uid, chat="c1", user="u1", channel="telegram"):
    """One input through the delivery core's commit (nothing is sent here)."""
    delivery = Delivery(store, Named(channel), fake_step)
    return delivery.commit(Inbound(chat, user, uid, None, UserInput(text=text)))


def counts(store) -> dict[str, int]:
    sql = "SELECT count(*) FROM {}"
    return {
        t: store.db.execute(sql.format(t)).fetchone()[0]
        for t in ("conversations", "events", "inputs")
    }


def test_creates_database_on_first_use(tmp_path):
    path = tmp_path / "new" / "dir" / "bot.db"
    with Storage(path) as s:
        assert path.exists()
        assert s.db.journal_mode == "wal"
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert s.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert {"conversations", "in_events", "out_events", "texts", "names", "inputs"} <= set(
            s.db.table_names()
        )
        assert "events" in s.db.view_names()  # the log as written, for every reader


def test_handle_writes_one_in_and_n_out_events_and_updates_row(store):
    h = send(store, "hello", "1")
    assert h.status == "new" and [r.key for r in h.replies] == ["ack", "ask"]
    events = list(store.db.query("SELECT * FROM events ORDER BY seq"))
    assert [(e["seq"], e["direction"], e["input_uid"]) for e in events] == [
        (1, "in", "1"),
        (2, "out", "1"),
        (3, "out", "1"),
    ]
    ev_in, _, ask = events
    assert ev_in["raw_text"] == "hello" and ev_in["outcome"] == "answer"
    assert ev_in["question"] is None and ev_in["value_json"] == '{"t": "hello"}'
    assert ask["reply_key"] == "ask" and ask["question"] == "q1"
    assert ask["choices_json"] == '[{"value": "y", "label": "はい"}]'
    row = store.db.table("conversations").get(h.conversation_id)
    assert row["status"] == "active" and row["phase"] == "asking" and row["awaiting"] == "q1"
    assert json.loads(row["answers_json"]) == {"texts": ["hello"]}  # computed from the state
    assert row["channel"] == "telegram" and row["chat_id"] == "c1" and row["user_id"] == "u1"
    assert row["updated_at"] > row["started_at"]
    assert counts(store) == {"conversations": 1, "events": 3, "inputs": 1}

    send(store, "again", "2")
    seqs = [e["seq"] for e in store.db.query("SELECT seq FROM events ORDER BY id")]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert store.current("telegram", "c1")[1].answers == {"texts": ["hello", "again"]}


def test_duplicate_input_changes_nothing_and_returns_same_replies(store):
    first = send(store, "hello", "42")
    before = (counts(store), list(store.db.query("SELECT * FROM conversations")))
    again = send(store, "something else", "42")
    assert again.status == "duplicate"
    assert again.pending[-1].replies == first.replies  # not sent yet: to send again
    assert (counts(store), list(store.db.query("SELECT * FROM conversations"))) == before
    # same uid on another channel is a different input
    assert send(store, "x", "42", channel="console").status == "new"


def test_step_that_raises_writes_nothing(store):
    with pytest.raises(RuntimeError):
        send(store, "boom", "1")
    assert counts(store) == {"conversations": 0, "events": 0, "inputs": 0}
    send(store, "hello", "2")
    before = (counts(store), list(store.db.query("SELECT * FROM conversations")))
    with pytest.raises(RuntimeError):
        send(store, "boom", "3")
    assert (counts(store), list(store.db.query("SELECT * FROM conversations"))) == before
    assert send(store, "hello", "3").status == "new"  # the failed uid was not recorded


def test_reopening_restores_state_exactly(tmp_path, clock):
    path = tmp_path / "bot.db"
    with Storage(path, clock=clock) as s:
        send(s, "a", "1")
        send(s, "b", "2")
        cid, state = s.current("telegram", "c1")
    with Storage(path, clock=clock) as s:
        assert s.current("telegram", "c1") == (cid, state)
        assert send(s, "a", "1").status == "duplicate"
        h = send(s, "c", "3")
        assert h.conversation_id == cid
        assert s.current("telegram", "c1")[1].answers == {"texts": ["a", "b", "c"]}


def test_verdict_finishes_and_cancel_ends_conversation(store):
    cid = send(store, "a", "1").conversation_id
    h = send(store, "done", "2")
    row = store.db.table("conversations").get(cid)
    assert (row["status"], row["verdict_status"], row["ruleset"]) == (
        "finished",
        "eligible",
        "tochigi-2025",
    )
    assert h.replies[0].verdict == VERDICT
    assert send(store, "done", "2").pending[-1].replies == h.replies  # rebuilt from the log
    assert store.current("telegram", "c1")[0] == cid  # finished is still current
    assert store.last_unfinished("telegram", "c1") is None

    send(store, "cancel", "3")
    assert store.db.table("conversations").get(cid)["status"] == "cancelled"
    assert store.current("telegram", "c1")[0] == cid  # its answers are kept
    assert store.last_unfinished("telegram", "c1")[0] == cid
    assert send(store, "x", "4").conversation_id == cid  # the next input continues it
    assert store.db.table("conversations").get(cid)["status"] == "active"
    fresh = store.start_new("telegram", "c1", "u1")  # only starting afresh leaves it
    assert store.current("telegram", "c1")[0] == fresh != cid


def test_start_new_abandons_active_keeps_finished(store):
    finished = send(store, "done", "1").conversation_id
    active = store.start_new("telegram", "c1", "u1", "en")
    send(store, "a", "2")
    fresh = store.start_new("telegram", "c1", "u1", "ja")
    status = {r["id"]: r["status"] for r in store.db.query("SELECT * FROM conversations")}
    assert status == {finished: "finished", active: "abandoned", fresh: "active"}
    cid, state = store.current("telegram", "c1")
    assert cid == fresh and state == State(lang="ja", reference=state.reference)
    assert state.reference is not None
    assert store.last_unfinished("telegram", "c1")[0] == fresh
    assert store.current("telegram", "other") is None


def test_delete_user_removes_only_that_users_rows(store):
    send(store, "a", "1", chat="c1", user="u1")
    send(store, "b", "2", chat="c1", user="u1")
    send(store, "c", "1", chat="k1", user="u1", channel="console")
    send(store, "d", "3", chat="c2", user="u2")
    assert store.delete_user("u1") == {"conversations": 2, "events": 9, "inputs": 3}
    assert counts(store) == {"conversations": 1, "events": 3, "inputs": 1}
    assert store.delete_user("nobody") == {"conversations": 0, "events": 0, "inputs": 0}


def test_purge_removes_old_conversations(store, clock):
    send(store, "a", "1", chat="old")
    clock.now += timedelta(days=40)
    send(store, "b", "2", chat="new")
    assert store.purge(30) == {"conversations": 1, "events": 3, "inputs": 1}
    assert store.current("telegram", "old") is None
    assert store.current("telegram", "new") is not None
    assert store.purge(30) == {"conversations": 0, "events": 0, "inputs": 0}


def test_events_are_append_only(store):
    send(store, "a", "1")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("UPDATE events SET raw_text = 'edited'")


def test_migrates_from_version_0(tmp_path):
    path = tmp_path / "bot.db"
    sqlite3.connect(path).close()  # an existing, empty (user_version 0) file
    with Storage(path) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migrates_from_version_1_keeping_data(tmp_path, clock):
    path = tmp_path / "bot.db"
    db = Database(path)
    migrate(db, MIGRATIONS[:1])
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.table("conversations").insert(
        {
            "channel": "telegram",
            "chat_id": "c1",
            "lang": "ja",
            "started_at": "2025-01-01T00:00:00.000000+00:00",
            "updated_at": "2025-01-01T00:00:00.000000+00:00",
            "phase": "asking",
            "awaiting": "q1",
            "state_json": State(phase="asking", awaiting="q1").model_dump_json(),
        }
    )
    db.close()
    with Storage(path, clock=clock) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {i.name for i in s.db.table("conversations").indexes}
        assert "conversations_user_id" in indexes  # migration 2's, for delete_user
        cid, state = s.current("telegram", "c1")
        assert state.awaiting == "q1"
        assert send(s, "a", "1").conversation_id == cid


def test_refuses_newer_schema(tmp_path):
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StorageError) as caught:
        Storage(path)
    assert caught.value.key == "newer"


def test_threads_on_different_chats_lose_nothing(store):
    n = 50

    def run(chat: str) -> None:
        for i in range(n):
            send(store, str(i), f"{chat}-{i}", chat=chat)

    threads = [threading.Thread(target=run, args=(c,)) for c in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts(store) == {"conversations": 2, "events": 2 * n * 3, "inputs": 2 * n}
    for chat in ("A", "B"):
        cid, state = store.current("telegram", chat)
        assert state.answers["texts"] == [str(i) for i in range(n)]
        seqs = [
            r["seq"]
            for r in store.db.query(
                "SELECT seq FROM events WHERE conversation_id = ? ORDER BY seq", [cid]
            )
        ]
        assert seqs == list(range(1, 3 * n + 1))


def test_migrates_from_version_3_keeping_inputs_and_telegram_marks(tmp_path, clock):
    """Migration 4 (the delivery core): inputs get their chat, telegram_chats becomes chats."""
    path = tmp_path / "bot.db"
    db = Database(path)
    migrate(db, MIGRATIONS[:3])
    now = "2025-01-01T00:00:00.000000+00:00"
    cid = (
        db.table("conversations")
        .insert(
            {
                "channel": "telegram",
                "chat_id": "42",
                "lang": "ja",
                "started_at": now,
                "updated_at": now,
                "phase": "asking",
                "awaiting": "q1",
                "state_json": State(phase="asking", awaiting="q1").model_dump_json(),
            }
        )
        .last_pk
    )
    db.table("inputs").insert(
        {"channel": "telegram", "uid": "1:7", "conversation_id": cid, "at": now}
    )
    db.table("telegram_chats").insert(
        {"chat_id": "42", "conversation_id": cid, "keyboard_message_id": 5,
         "done_update_id": 7, "updated_at": now}
    )  # fmt: skip
    db.close()
    with Storage(path, clock=clock) as s:
        assert "telegram_chats" not in s.db.table_names()
        row = s.db.execute("SELECT channel, chat_id, uid, tag FROM inputs").fetchall()
        assert row == [("telegram", "42", "1:7", None)]
        assert send(s, "again", "1:7", chat="42").status == "duplicate"  # still recognised
        assert Delivery(s, Named("telegram"), fake_step).marks("42") == {"keyboard": 5}
        assert s.db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)  # all were sent


def test_a_transaction_without_fsync_is_committed_and_the_next_one_is_full(store):
    with store.transaction(fsync=False) as db:
        assert db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        db.execute("CREATE TABLE t (x)")
    assert store.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL again
    assert "t" in store.db.table_names()


def test_line_channel_migration_widens_the_check_and_keeps_every_row(tmp_path, clock):
    path = tmp_path / "bot.db"
    db = Database(path)
    db.execute("PRAGMA foreign_keys = ON")
    line = MIGRATIONS.index(_m5_line_channel)
    migrate(db, MIGRATIONS[:line])
    row = {
        "chat_id": "c1",
        "lang": "ja",
        "started_at": "2025-01-01T00:00:00.000000+00:00",
        "updated_at": "2025-01-01T00:00:00.000000+00:00",
        "phase": "asking",
        "state_json": State(phase="asking").model_dump_json(),
    }
    with pytest.raises(sqlite3.IntegrityError):  # before: LINE could not be stored
        db.table("conversations").insert(row | {"channel": "line"})
    cid = db.table("conversations").insert(row | {"channel": "telegram"}).last_rowid
    event = {"conversation_id": cid, "seq": 1, "at": row["started_at"]}
    db.table("events").insert(event | {"direction": "in", "raw_text": "x"})
    db.close()
    with Storage(path, clock=clock) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert s.db.execute("SELECT count(*) FROM events").fetchone() == (1,)  # none cascaded
        s.db.table("conversations").insert(row | {"channel": "line", "chat_id": "U1"})
        with pytest.raises(sqlite3.IntegrityError):
            s.db.table("conversations").insert(row | {"channel": "fax"})


# --- compact storage (migration 7) ----------------------------------------------------------


def quoting_step(state: State, user_input: UserInput) -> tuple[State, list[Reply]]:
    """Replies quoting the reference number (as the welcome does), one shared by everyone."""
    new = state.model_copy(deep=True)
    new.phase, new.awaiting = "asking", "q1"
    new.last = Interpretation(outcome="answer", value=user_input.raw)
    return new, [
        Reply(key="welcome", text=f"No. {state.reference} ({state.reference})"),
        Reply(key="ask", text="next?", choices=[Choice(value="y", label="はい")]),
        Reply(key="odd", text=f"{REF_MARK} {state.reference}"),  # not templated
    ]


def test_reply_texts_are_stored_once_and_read_back_exactly(store):
    delivery = Delivery(store, Named("telegram"), quoting_step)
    turns = [delivery.commit(Inbound(c, "u", "1", None, UserInput(text="x"))) for c in "ab"]
    refs = [store.current("telegram", c)[1].reference for c in "ab"]
    assert refs[0] != refs[1]
    for turn, ref in zip(turns, refs, strict=True):
        rows = store.conn.execute(
            "SELECT raw_text, choices_json, at, input_uid FROM events"
            " WHERE conversation_id = ? AND direction = 'out' ORDER BY seq",
            [turn.conversation_id],
        ).fetchall()
        at = store.conn.execute(
            "SELECT at FROM events WHERE conversation_id = ? AND direction = 'in'",
            [turn.conversation_id],
        ).fetchone()[0]
        assert [r[0] for r in rows] == [f"No. {ref} ({ref})", "next?", f"{REF_MARK} {ref}"]
        assert rows[1][1] == '[{"value": "y", "label": "はい"}]'
        assert {(r[2], r[3]) for r in rows} == {(at, "1")}  # the input's time and id
        assert store.replies(turn.conversation_id, 2, 4) == turn.replies
    bodies = [r[0] for r in store.conn.execute("SELECT body FROM texts")]
    assert bodies.count(f"No. {REF_MARK} ({REF_MARK})") == 1  # one row for both
    assert bodies.count("next?") == 1


def test_deleting_a_user_deletes_the_texts_no_one_else_uses(store):
    send(store, "mine", "1", chat="c1", user="u1")
    send(store, "done", "2", chat="c1", user="u1")
    send(store, "yours", "1", chat="c2", user="u2")
    bodies = lambda: {r[0] for r in store.conn.execute("SELECT body FROM texts")}  # noqa: E731
    assert {"got mine", "got yours", "next?"} <= bodies()
    assert any('"tochigi-2025"' in b for b in bodies())  # the verdict
    store.delete_user("u1")
    assert "got mine" not in bodies() and not any('"tochigi-2025"' in b for b in bodies())
    assert {"got yours", "next?"} <= bodies()  # still used by u2's conversation
    assert "ok" not in bodies()  # u1's verdict reply
    assert [r.text for r in send(store, "yours", "1", chat="c2", user="u2").pending[0].replies] == [
        "got yours",
        "next?",
    ]  # u2's unsent replies read back whole
    store.delete_user("u2")
    assert bodies() == set()


def old_event(cid: int, seq: int, at: str, direction: str, **fields) -> dict:
    columns = ("question", "outcome", "raw_text", "value_json", "command", "reply_key")
    columns += ("choices_json", "verdict_json", "input_uid")
    return {"conversation_id": cid, "seq": seq, "at": at, "direction": direction} | {
        c: fields.get(c) for c in columns
    }


def test_migration_7_keeps_every_event_state_and_input_exactly(tmp_path, clock):
    """A version-6 database with data: the events read back byte for byte through the view,
    the states as they were, unsent outbox rows kept and sent ones deleted."""
    path = tmp_path / "bot.db"
    db = Database(path)
    migrate(db, MIGRATIONS[:6])
    ref, at = "TC-2345-67", "2025-01-01T00:00:00.000001+00:00"
    state = State(
        phase="verdict",
        answers={"entity_type": "company"},
        history=["entity_type"],
        asked=["entity_type"],
        offered=[Choice(value="/restart", label="最初から")],
        last=Interpretation(question="entity_type", outcome="answer", value="company"),
        verdict=VERDICT,
        reference=ref,
    )
    row = {"channel": "telegram", "chat_id": "42", "user_id": "7", "lang": "ja",
           "started_at": at, "updated_at": at, "status": "finished", "phase": "verdict",
           "verdict_status": "eligible", "ruleset": "tochigi-2025", "reference": ref,
           "state_json": state.model_dump_json(),
           "answers_json": '{"entity_type": "company"}'}  # fmt: skip
    cid = db.table("conversations").insert(row).last_pk
    db.table("reference_numbers").insert({"reference": ref, "issued_at": at})
    later = "2025-01-01T09:00:00+09:00"  # not as Storage.now writes it: kept as text
    events = [
        old_event(cid, 1, at, "in", outcome="start", raw_text="/start", command="start",
                  input_uid="1:1"),
        old_event(cid, 2, at, "out", question="entity_type", raw_text=f"No. {ref}\n!",
                  reply_key="question.entity_type.text", input_uid="1:1",
                  choices_json='[{"value": "a", "label": "A"}]'),
        old_event(cid, 3, later, "in", question="entity_type", outcome="answer",
                  raw_text="会社", value_json='"company"', input_uid="1:2"),
        old_event(cid, 4, later, "out", raw_text="ok", reply_key="verdict",
                  verdict_json=json.dumps(VERDICT), input_uid="1:2"),
        old_event(cid, 5, at, "out", raw_text="wait", reply_key="robustness.flood.wait",
                  input_uid="1:3"),  # a notice: its own time and input
    ]  # fmt: skip
    db.table("events").insert_all(events)
    db.table("inputs").insert_all(
        {"channel": "telegram", "chat_id": "42", "uid": f"1:{i}", "tag": None,
         "conversation_id": cid, "at": at} for i in (1, 2, 3)
    )  # fmt: skip
    outbox = {"conversation_id": cid, "channel": "telegram", "chat_id": "42", "created_at": at}
    db.table("outbox").insert_all(
        [outbox | {"input_uid": "1:1", "first_seq": 2, "last_seq": 2, "status": "sent"},
         outbox | {"input_uid": "1:3", "first_seq": 5, "last_seq": 5, "status": "pending"}]
    )  # fmt: skip
    db.close()
    with Storage(path, clock=clock) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert s.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        got = list(s.db.query("SELECT * FROM events ORDER BY seq"))
        assert got == [{"id": i} | e for i, e in enumerate(events, start=1)]
        assert s.current("telegram", "42") == (cid, state)
        conv = s.db.table("conversations").get(cid)
        assert json.loads(conv["answers_json"]) == {"entity_type": "company"}
        assert '"verdict"' not in conv["state_json"] and "最初から" not in conv["state_json"]
        assert s.db.execute("SELECT uid FROM inputs ORDER BY uid").fetchall() == [
            ("1:1",),
            ("1:2",),
            ("1:3",),
        ]
        assert s.db.execute("SELECT input_uid, status FROM outbox").fetchall() == [
            ("1:3", "pending")
        ]
        delivery = Delivery(s, Named("telegram"), fake_step)
        [pending] = delivery.pending("42")[0]
        assert [r.text for r in pending.replies] == ["wait"]
        assert send(s, "again", "1:2", chat="42").status == "duplicate"
        assert send(s, "more", "1:4", chat="42", user="7").status == "new"
        assert [e["seq"] for e in s.db.query("SELECT seq FROM events ORDER BY seq")] == list(
            range(1, 9)
        )
        assert s.delete_user("7") == {"conversations": 1, "events": 8, "inputs": 4}
        assert s.db.execute("SELECT count(*) FROM texts").fetchone() == (0,)


def test_a_real_dialogs_state_reads_back_as_the_step_left_it(store):
    """The state is stored compactly (verdict and buttons in texts, `last` from the latest
    input, sub-lists as indices into `asked`): every turn of a real dialog reads back equal."""
    from dialogs.engine import step

    delivery = Delivery(store, Named("telegram"), step)
    said = ["/start", "会社", "製造業", "わからない", "スキップ", "戻る", "3000万円", "はい"]
    said += ["20人", "いいえ", "回答確認", "やめる", "続ける", "いいえ", "はい", "栃木県内です"]
    scenario = Path(__file__).parent / "scenarios" / "eligible_led_by_text.yaml"
    steps = yaml.safe_load(scenario.read_text("utf-8"))["steps"]
    to_verdict = ["/start"] + [str(s["say"]) for s in steps if "say" in s]
    seen: set[str] = set()
    for chat, texts in (("c1", said), ("c2", to_verdict)):
        for i, text in enumerate(texts):
            turn = delivery.commit(Inbound(chat, "u1", str(i), None, UserInput(text=text)))
            assert store.current("telegram", chat) == (turn.conversation_id, turn.state), text
            seen |= {k for k, v in turn.state.model_dump().items() if v not in (None, [], {})}
    assert {"verdict", "offered", "history", "asked", "skipped", "guided", "last"} <= seen


def dangling(store) -> int:
    """Replies whose text row is gone."""
    return store.conn.execute(
        "SELECT count(*) FROM out_events o LEFT JOIN texts t ON t.id = o.text WHERE t.id IS NULL"
    ).fetchone()[0]


def test_remembered_text_ids_are_forgotten_when_an_admin_tool_deletes_texts(tmp_path, clock):
    """The bot remembers the ids of texts it stored; another process (admin delete-user or
    purge) may delete them: the next turn must store them again, never point at a gone row."""
    path = tmp_path / "bot.db"
    with Storage(path, clock=clock) as bot, Storage(path, clock=clock) as admin:
        send(bot, "mine", "1", chat="c1", user="u1")  # texts "got mine", "next?" remembered
        admin.delete_user("u1")  # another connection deletes them (nobody else uses them)
        turn = send(bot, "mine", "1", chat="c2", user="u2")  # the same texts again
        assert dangling(bot) == 0
        assert [r.text for r in bot.replies(turn.conversation_id, 2, 3)] == ["got mine", "next?"]


def test_remembered_text_ids_are_forgotten_when_a_turn_is_undone_or_texts_deleted(store):
    def failing(state, user_input):
        new, replies = fake_step(state, user_input)
        return new, [*replies, Reply(key="x", text="bad")]

    class Boom(Exception):
        pass

    delivery = Delivery(store, Named("telegram"), failing)
    with pytest.raises(Boom), store.transaction():  # the texts of a turn undone with it
        delivery._turn(store.conn, Inbound("c1", "u1", "1", None, UserInput(text="new")))
        raise Boom
    send(store, "new", "2", chat="c2", user="u2")  # "got new" stored afresh
    send(store, "x", "1", chat="c3", user="u3")
    store.delete_user("u2")  # "got new" deleted by us
    send(store, "new", "2", chat="c4", user="u4")
    assert dangling(store) == 0


def test_migration_8_keys_the_outbox_and_chats_on_the_chat(tmp_path, clock):
    """A version-7 database with an unsent, a given-up and a sent outbox row: the first two
    are kept with the event id of their first reply as id, the chat's marks are kept, and the
    rows still send, note and delete as before."""
    path = tmp_path / "bot.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, MIGRATIONS[:7])
    at = "2025-01-01T00:00:00.000001+00:00"
    cid = conn.execute(
        "INSERT INTO conversations (channel, chat_id, user_id, lang, started_at, updated_at,"
        " status, phase, state_json) VALUES ('telegram', '42', '7', 'ja', ?, ?, 'active',"
        " 'asking', '{}')",
        [at, at],
    ).lastrowid
    text = conn.execute("INSERT INTO texts (hash, body) VALUES (1, 'hello')").lastrowid
    key = conn.execute("INSERT INTO names (name) VALUES ('robustness.flood.wait')").lastrowid
    conn.executemany(
        "INSERT INTO out_events (id, conversation_id, seq, at, input_uid, reply_key, text)"
        " VALUES (?, ?, ?, 1, ?, ?, ?)",
        [(10 + seq, cid, seq, f"1:{seq}", key, text) for seq in (1, 2, 3)],
    )
    conn.executemany(
        "INSERT INTO outbox (conversation_id, channel, chat_id, input_uid, first_seq, last_seq,"
        " status, created_at) VALUES (?, 'telegram', '42', ?, ?, ?, ?, ?)",
        [(cid, "1:1", 1, 1, "dropped", at), (cid, "1:2", 2, 2, "sent", at),
         (cid, "1:3", 3, 3, "pending", at)],
    )  # fmt: skip
    conn.execute(
        "INSERT INTO chats VALUES ('telegram', '42', ?, '{\"keyboard\": 5}', ?)", [cid, at]
    )
    conn.close()
    with Storage(path, clock=clock) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 8
        assert s.db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert s.db.execute("PRAGMA foreign_key_check").fetchall() == []
        assert s.db.execute("SELECT id, input_uid, status FROM outbox ORDER BY id").fetchall() == [
            (11, "1:1", "dropped"),
            (13, "1:3", "pending"),
        ]
        delivery = Delivery(s, Named("telegram"), fake_step)
        [pending], marks = delivery.pending("42")
        assert (pending.outbox_id, [r.text for r in pending.replies], marks) == (
            13, ["hello"], {"keyboard": 5}
        )  # fmt: skip
        delivery.mark("42", pending, Sent(1, {"keyboard": 6}))
        assert s.db.execute("SELECT id FROM outbox").fetchall() == [(11,)]  # sent: gone
        assert delivery.marks("42") == {"keyboard": 6}
        s.delete_user("7")
        assert [
            s.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("outbox", "chats")
        ] == [0, 0]


@given(st.lists(st.builds(Choice, value=st.text(max_size=20), label=st.text(max_size=20))))
def test_choices_are_stored_as_pydantic_dumps_them(choices):
    """The remembered JSON of a list of choices is the bytes pydantic's dump gives."""
    from bot.storage import _choices_json, _dumps

    pairs = tuple((c.value, c.label) for c in choices)
    assert _choices_json(pairs) == _dumps([c.model_dump() for c in choices])


def test_now_is_the_clocks_time_as_iso_text_whatever_the_minute(tmp_path):
    """Storage.now reuses the minute's text while the minute lasts: the same text as
    isoformat, across seconds, minutes, days and years, other time zones, `minus_days`; and
    the event time stored for it is its microseconds."""
    from datetime import timezone

    from bot.storage import _micros

    times = iter(())
    with Storage(tmp_path / "t.db", clock=lambda: next(times)) as store:
        start = datetime(2025, 12, 31, 23, 58, 59, 999_998, tzinfo=UTC)
        steps = [0, 1, 1, 999_999, 1, 59_000_000, 1_000_000, 61_000_001, 86_400_000_000, 7]
        at, expected = start, []
        for step in steps:
            at += timedelta(microseconds=step)
            expected.append(at)
        expected.append(datetime(2026, 1, 1, 9, 0, 0, 1, tzinfo=timezone(timedelta(hours=9))))
        expected.append(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC))  # the same instant
        times = iter(expected)
        for at in expected:
            iso = store.now()
            assert iso == at.astimezone(UTC).isoformat(timespec="microseconds")
            assert store._micros(iso) == _micros(iso) and isinstance(store._micros(iso), int)
        times = iter([start])
        assert store.now(minus_days=3) == "2025-12-28T23:58:59.999998+00:00"
    # the first call's minute may be any, the epoch's last one (minute -1) too
    epoch_eve = datetime(1969, 12, 31, 23, 59, 30, 5, tzinfo=UTC)
    with Storage(tmp_path / "u.db", clock=lambda: epoch_eve) as store:
        assert store.now() == "1969-12-31T23:59:30.000005+00:00"
