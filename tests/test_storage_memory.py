"""The Storage's memory of each chat's last turn (Storage.recall/remember): the commit body of
the async path (the writer's batches) uses it instead of reading the chat's conversation back.
It must always be exactly what the database holds: what a fresh Storage on the same file
reads, forgotten when another connection commits, when a write of ours is undone, and when
anything writes outside a turn."""

import asyncio
import random
import sqlite3
from pathlib import Path

import pytest
import yaml
from test_delivery import FakeChannel
from test_storage import Clock, fake_step

from bot.delivery import Delivery, Inbound
from bot.storage import Storage, conversation_status
from dialogs.io import UserInput

SCENARIOS = Path(__file__).parent / "scenarios"


def said(name: str) -> list[str]:
    steps = yaml.safe_load((SCENARIOS / name).read_text("utf-8"))["steps"]
    return [str(s["say"]) for s in steps if "say" in s]


def check_memory(store: Storage) -> int:
    """Every remembered chat as a fresh Storage on the same file reads it; returns how many."""
    with Storage(store.path, clock=Clock()) as fresh:
        db = fresh.conn
        for (channel, chat), known in store._chats.items():
            cid, state = fresh.current(channel, chat)
            assert cid == known.conversation_id, chat
            assert state == known.state, chat
            assert repr(state) == repr(known.state), chat  # the same types too (no 1 vs "1")
            assert state.model_dump(mode="json") == known.state.model_dump(mode="json")
            status, seq, user, *columns = db.execute(
                "SELECT status, (SELECT max(seq) FROM events WHERE conversation_id = c.id),"
                " user_id, lang, phase, awaiting, verdict_status, ruleset"
                " FROM conversations c WHERE id = ?",
                [cid],
            ).fetchone()
            assert (status, seq) == (known.status, known.seq), chat
            assert status == conversation_status(state), chat  # columns as the state has them
            verdict = state.verdict or {}
            assert columns == [state.lang, state.phase, state.awaiting, verdict.get("status"),
                               verdict.get("ruleset")], chat  # fmt: skip
            assert user is not None or not known.user, chat
            row = db.execute(
                "SELECT marks_json FROM chats WHERE channel = ? AND chat_id = ?", [channel, chat]
            ).fetchone()
            assert (row[0] if row else "{}") == known.marks, chat
            if known.unsent is not None:
                assert known.unsent == unsent(db, channel, chat), chat
        if store._chats:
            assert store._last_id == db.execute("SELECT max(id) FROM events").fetchone()[0]
        for (kind, value), row_id in store._ids.items():
            table, column = ("texts", "body") if kind == 0 else ("names", "name")
            got = db.execute(f"SELECT {column} FROM {table} WHERE id = ?", [row_id]).fetchone()
            assert got == (value,), value
    return len(store._chats)


def unsent(db, channel: str, chat: str) -> tuple[int, ...]:
    sql = "SELECT id FROM outbox WHERE channel = ? AND chat_id = ? AND status = 'pending'"
    return tuple(r[0] for r in db.execute(sql + " ORDER BY id", [channel, chat]))


def inbound(chat, uid, text=None, choice=None, user="u1", meta=None, tag=None):
    return Inbound(chat, user, uid, tag, UserInput(text=text, choice=choice), meta)


async def commit(dlv: Delivery, *inbounds: Inbound) -> list:
    """Commit through the writer, all in one batch (what concurrent updates do), and send.
    Each chat's last turn lists the chat's unsent outbox rows, as the outbox holds them."""
    turns = await asyncio.gather(*(dlv.commit_async(i) for i in inbounds))
    for turn in {t.chat: t for t in turns if t.status != "stale"}.values():
        stored = unsent(dlv.storage.conn, dlv.channel.name, turn.chat)
        assert tuple(p.outbox_id for p in turn.pending) == stored, turn.chat
    for turn, i in zip(turns, inbounds, strict=True):
        await dlv.deliver(turn, i.meta)
    return turns


async def test_a_real_dialogs_remembered_state_is_what_a_fresh_storage_reads(store, channel):
    """Several chats in real dialogs, interleaved in batches: typed answers, buttons, double
    presses (two inputs of a chat in one batch), redeliveries, stale presses, restarts."""
    from dialogs.engine import step

    dlv = Delivery(store, channel, step)
    rng = random.Random(14)
    scripts = [said(n) for n in sorted(p.name for p in SCENARIOS.glob("*.yaml"))][:8]
    chats = {f"c{i}": ["/start", *script] for i, script in enumerate(scripts)}
    uids = iter(range(1, 10**6))
    last: dict[str, Inbound] = {}
    hits, resent, known_unsent = 0, False, False
    for _ in range(60):
        # some sends fail: part of a turn's replies, or all (the user blocked the bot)
        channel.fail = [rng.choice([(0, False), (1, False), (0, True)]) for _ in range(2)]
        channel.fail += [(99, False)] * rng.randrange(8)
        rng.shuffle(channel.fail)
        batch = []
        for chat, script in chats.items():
            roll = rng.random()
            state = store.current("telegram", chat)
            offered = state[1].offered if state else []
            if roll < 0.1 and chat in last:  # a redelivery
                batch.append(last[chat])
                continue
            if roll < 0.2:  # a press on an old keyboard
                batch.append(inbound(chat, str(next(uids)), choice="x", meta="old-button"))
                continue
            if roll < 0.25:
                batch.append(inbound(chat, str(next(uids)), text="/restart"))
            elif roll < 0.55 and offered:  # a button, sometimes pressed twice at once
                value = rng.choice(offered).value
                batch.append(inbound(chat, str(next(uids)), choice=value))
                if rng.random() < 0.3:
                    batch.append(inbound(chat, str(next(uids)), choice=value))
            elif script:
                batch.append(inbound(chat, str(next(uids)), text=script.pop(0)))
            else:
                batch.append(inbound(chat, str(next(uids)), text="/start"))
            last[chat] = batch[-1]
        rng.shuffle(batch)
        turns = await commit(dlv, *batch)
        assert {t.status for t in turns} <= {"new", "duplicate", "stale"}
        resent = resent or any(len(t.pending) > 1 for t in turns)
        known_unsent = known_unsent or any(k.unsent == () for k in store._chats.values())
        hits = max(hits, check_memory(store))
    assert hits == len(chats)  # every chat was remembered at some point
    assert resent and known_unsent  # rows left unsent went first; the memory knew of none
    await dlv.stop()


async def test_unsent_rows_remembered_go_first_in_order(store, channel):
    """A chat's unsent rows (a failed send) are remembered as such and sent before the next
    turn's; a row given up is no longer pending."""
    dlv = Delivery(store, channel, fake_step)
    channel.fail = [(1, False)]  # "got a" out, "next?" not
    await commit(dlv, inbound("c1", "1", "a"))
    assert store._chats["telegram", "c1"].unsent is None  # a partial send: not known
    [t] = await commit(dlv, inbound("c1", "2", "b"))  # read from the outbox, then sent
    assert [len(p.replies) for p in t.pending] == [1, 2]
    assert [x for c, x, _ in channel.sent] == ["got a", "next?", "got b", "next?"]
    assert store._chats["telegram", "c1"].unsent == ()  # all sent: known empty
    channel.fail = [(0, True)]  # given up
    await commit(dlv, inbound("c1", "3", "c"))
    [t] = await commit(dlv, inbound("c1", "4", "d"))
    assert [p.outbox_id for p in t.pending] == [t.pending[0].outbox_id]  # only its own
    assert store._chats["telegram", "c1"].unsent == ()
    channel.fail = [(0, False)]
    await commit(dlv, inbound("c1", "5", "e"))
    [t] = await commit(dlv, inbound("c1", "5", "e"))  # redelivered: the unsent row again
    assert t.status == "duplicate" and len(t.pending) == 1
    check_memory(store)
    await dlv.stop()


async def test_the_memory_survives_a_restart_of_the_bot_as_the_database_holds_it(tmp_path, channel):
    path = tmp_path / "bot.db"
    with Storage(path, clock=Clock()) as s:
        dlv = Delivery(s, channel, fake_step)
        await commit(dlv, inbound("c1", "1", "a"), inbound("c2", "2", "b"))
        await commit(dlv, inbound("c1", "3", "c"))
    with Storage(path, clock=Clock()) as s:  # a restart: nothing remembered, all read back
        dlv = Delivery(s, FakeChannel(), fake_step)
        [t] = await commit(dlv, inbound("c1", "4", "d"))
        assert t.state.answers == {"texts": ["a", "c", "d"]}
        [t] = await commit(dlv, inbound("c1", "5", "e"))  # from the memory
        assert t.state.answers == {"texts": ["a", "c", "d", "e"]}
        assert check_memory(s) == 1


async def test_another_connections_write_is_seen_at_the_next_turn(tmp_path, channel):
    path = tmp_path / "bot.db"
    with Storage(path, clock=Clock()) as bot, Storage(path, clock=Clock()) as admin:
        dlv = Delivery(bot, channel, fake_step)
        await commit(dlv, inbound("c1", "1", "a"), inbound("c2", "2", "b", user="u2"))
        first = bot.current("telegram", "c1")[0]
        assert check_memory(bot) == 2

        admin.delete_user("u1")  # another process: the admin tool's delete-user
        [t] = await commit(dlv, inbound("c1", "3", "again"))
        assert t.conversation_id != first and t.state.answers == {"texts": ["again"]}
        assert [r.text for r in t.replies] == ["got again", "next?"]

        other = admin.start_new("telegram", "c2", "u2")  # another process opens a new one
        [t] = await commit(dlv, inbound("c2", "4", "fresh", user="u2"))
        assert (t.conversation_id, t.state.answers) == (other, {"texts": ["fresh"]})

        with admin.transaction() as db:  # ... or changes the conversation's state
            db.execute(
                'UPDATE conversations SET state_json = \'{"answers":{"texts":["x"]}}\''
                " WHERE id = ?",
                [other],
            )
        [t] = await commit(dlv, inbound("c2", "5", "y", user="u2"))
        assert t.state.answers == {"texts": ["x", "y"]}
        assert check_memory(bot) == 1  # c1 forgotten with the rest, c2 remembered anew


async def test_delete_through_the_same_storage_then_a_new_input_starts_afresh(store, channel):
    """/delete runs delete_user on the bot's own connection (data_version does not change)."""
    dlv = Delivery(store, channel, fake_step)
    await commit(dlv, inbound("c1", "1", "a"))
    [before] = await commit(dlv, inbound("c1", "2", "b"))
    await asyncio.to_thread(store.delete_user, "u1")
    [after] = await commit(dlv, inbound("c1", "3", "c"))
    assert after.state.answers == {"texts": ["c"]} and after.state.reference is not None
    assert after.state.reference != before.state.reference
    assert check_memory(store) == 1


async def test_start_new_and_refused_notes_through_the_same_storage_are_seen(store, channel):
    dlv = Delivery(store, channel, fake_step)
    await commit(dlv, inbound("c1", "1", "a"))
    cid = store.start_new("telegram", "c1", "u1")
    [t] = await commit(dlv, inbound("c1", "2", "b"))
    assert (t.conversation_id, t.state.answers) == (cid, {"texts": ["b"]})
    assert dlv.refuse(inbound("c1", "3", "too many"), fake_step(t.state, UserInput())[1][0])
    [t] = await commit(dlv, inbound("c1", "4", "c"))  # its events after the notice's
    assert t.state.answers == {"texts": ["b", "c"]}
    assert check_memory(store) == 1
    seqs = [r[0] for r in store.conn.execute("SELECT seq FROM events WHERE conversation_id = ?"
                                             " ORDER BY seq", [cid])]  # fmt: skip
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_write_the_memory_is_not_told_of_makes_it_forget(store, channel):
    """The net under the rules: any change on the connection outside a turn that remembers
    (here a writer body that abandons the conversation) is noticed at the next turn."""
    dlv = Delivery(store, channel, fake_step)
    [t] = await commit(dlv, inbound("c1", "1", "a"))

    def abandon(db):
        sql = "UPDATE conversations SET status = 'abandoned' WHERE id = ?"
        db.execute(sql, [t.conversation_id])

    await dlv.writer.submit(abandon)
    [t2] = await commit(dlv, inbound("c1", "2", "b"))
    assert t2.conversation_id != t.conversation_id and t2.state.answers == {"texts": ["b"]}


async def test_a_body_that_fails_after_remembering_leaves_nothing_remembered(store, channel):
    dlv = Delivery(store, channel, fake_step)
    await commit(dlv, inbound("c1", "1", "a"), inbound("c2", "2", "a"))

    def turn_then_fail(db):
        dlv._turn(db, inbound("c1", "3", "lost"))  # remembered, then undone
        raise RuntimeError("a bug after the turn")

    with pytest.raises(RuntimeError):
        await dlv.writer.submit(turn_then_fail)
    assert check_memory(store) == 0  # forgotten, all of it
    [t] = await commit(dlv, inbound("c1", "3", "b"))
    assert t.state.answers == {"texts": ["a", "b"]}
    assert check_memory(store) == 1

    # a failure inside the turn, after its rows were written (the channel's marks)
    def boom(marks):
        raise RuntimeError("a bug in the channel")

    channel.committed = boom
    with pytest.raises(RuntimeError):
        await dlv.commit_async(inbound("c1", "4", "lost"))
    del channel.committed
    check_memory(store)
    [t] = await commit(dlv, inbound("c1", "4", "c"))
    assert t.state.answers == {"texts": ["a", "b", "c"]}
    check_memory(store)


def fail_commit(db):
    """A body whose writes make the COMMIT fail (a deferred foreign key, checked at COMMIT)."""
    db.execute("PRAGMA defer_foreign_keys = ON")
    db.execute(
        "INSERT INTO chats (channel, chat_id, conversation_id, updated_at)"
        " VALUES ('telegram', 'nobody', 999999, '')"
    )


async def test_a_failed_commit_leaves_nothing_remembered(store, channel):
    dlv = Delivery(store, channel, fake_step)
    await commit(dlv, inbound("c1", "1", "a"))
    lost = inbound("c1", "2", "lost")
    batch = [dlv.writer.submit(fail_commit), dlv.writer.submit(lambda db: dlv._turn(db, lost))]
    results = await asyncio.gather(*batch, return_exceptions=True)  # one batch, one COMMIT
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert check_memory(store) == 0
    [t] = await commit(dlv, inbound("c1", "2", "b"))  # the lost input again: new, as before
    assert t.status == "new" and t.state.answers == {"texts": ["a", "b"]}
    assert check_memory(store) == 1


def test_the_synchronous_path_stays_right_beside_the_memory(store, channel):
    """The console's commits (Storage.transaction) and the writer's share the connection."""
    dlv = Delivery(store, channel, fake_step)

    async def one(i: Inbound):
        return (await commit(dlv, i))[0]

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(one(inbound("c1", "1", "a")))
        assert dlv.commit(inbound("c1", "2", "b")).state.answers == {"texts": ["a", "b"]}
        t = loop.run_until_complete(one(inbound("c1", "3", "c")))
        assert t.state.answers == {"texts": ["a", "b", "c"]}
        with pytest.raises(sqlite3.Error), store.transaction() as db:
            fail_commit(db)  # first: the turn's memory counts this change as known
            dlv._turn(db, inbound("c1", "4", "lost"))
        with pytest.raises(RuntimeError), store.transaction() as db:
            dlv._turn(db, inbound("c1", "4", "lost too"))
            raise RuntimeError("a bug after the turn")
        t = loop.run_until_complete(one(inbound("c1", "4", "d")))
        assert t.state.answers == {"texts": ["a", "b", "c", "d"]}
        assert check_memory(store) == 1
    finally:
        loop.run_until_complete(dlv.stop())
        loop.close()


async def test_a_conversation_opened_without_a_user_gets_the_first_users_id_once(store, channel):
    dlv = Delivery(store, channel, fake_step)
    store.start_new("telegram", "c1", None)
    await commit(dlv, inbound("c1", "1", "a", user=None))
    assert not store.recall("telegram", "c1").user
    await commit(dlv, inbound("c1", "2", "b", user="7"))
    await commit(dlv, inbound("c1", "3", "c", user="8"))  # the first one's stays
    assert store.recall("telegram", "c1").user
    assert store.conn.execute("SELECT user_id FROM conversations").fetchall() == [("7",)]
    assert check_memory(store) == 1


async def test_the_rows_columns_follow_each_change_of_language_status_and_verdict(store, channel):
    """A turn that changes none of the conversation's language, status and verdict leaves
    those columns as they are; each change of one of them is written (verdict given, then
    taken back in the same conversation; language switched; cancelled; answered again)."""
    from test_storage import VERDICT

    def step(state, user_input):
        new, replies = fake_step(state, user_input)
        if user_input.raw == "undo":  # the verdict taken back, still the same conversation
            new.phase, new.verdict, new.awaiting = "asking", None, "q9"
        elif user_input.raw == "english":
            new.lang = "en"
        elif user_input.raw == "preview":  # a verdict while still asking: status stays
            new.verdict = VERDICT
        elif user_input.raw == "other verdict":
            new.phase, new.verdict = "verdict", {**VERDICT, "status": "ineligible"}
        return new, replies

    dlv = Delivery(store, channel, step)
    texts = ["a", "b", "done", "c", "undo", "d", "english", "e", "done", "other verdict"]
    texts += ["undo", "preview", "h", "undo", "cancel", "f", "g"]
    for n, text in enumerate(texts):
        (turn,) = await commit(dlv, inbound("c1", str(n), text=text))
        assert turn.status == "new", text
        assert check_memory(store) == 1, text
    await dlv.stop()


async def test_a_remembered_chats_inputs_are_noted_and_deduplicated_as_before(store, channel):
    """A remembered chat's input row is written before its step: a stale press leaves none
    (and the chat remembered), a redelivery is a duplicate, a reused id with another tag is
    a new input whose row takes the new tag."""
    dlv = Delivery(store, channel, fake_step)

    def inputs():
        return store.conn.execute("SELECT uid, tag FROM inputs ORDER BY uid").fetchall()

    async def one(uid, text, tag=None, meta=None):
        (turn,) = await commit(dlv, inbound("c1", uid, text=text, tag=tag, meta=meta))
        check_memory(store)
        return turn.status

    assert await one("1", "a", tag="m:1") == "new"
    assert ("telegram", "c1") in store._chats  # remembered: the next inputs go the new way
    assert await one("2", "b", meta="old-button") == "stale"
    assert inputs() == [("1", "m:1")] and ("telegram", "c1") in store._chats
    assert await one("2", "b") == "new"
    assert await one("1", "a", tag="m:1") == "duplicate"
    assert await one("2", "b") == "duplicate"  # no tag: the id decides
    assert await one("1", "again", tag="m:7") == "new"  # the id reused, another message
    assert await one("1", "again", tag="m:7") == "duplicate"
    assert inputs() == [("1", "m:7"), ("2", None)]
    texts = store.current("telegram", "c1")[1].answers["texts"]
    assert texts == ["a", "b", "again"]
    await dlv.stop()
