"""The delivery core (bot/delivery.py) with a fake channel: stored before sent, the outbox,
dedup per chat, stale inputs, storage failures never confirmed."""

import asyncio
import sqlite3

import pytest
from test_storage import fake_step

from bot import delivery as core
from bot.delivery import Channel, Delivery, Inbound, NotStored, Sent
from dialogs.io import UserInput


class FakeChannel(Channel):
    """Sends into a list; `fail` makes the next sends fail (count of replies that get out)."""

    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []  # (chat, text, meta)
        self.fail: list[tuple[int, bool]] = []  # (replies that get out, final) per send call
        self.crash = False

    def stale(self, inbound, marks):
        return inbound.meta == "old-button"

    def committed(self, marks):
        return {**marks, "turns": marks.get("turns", 0) + 1, "live": False}

    async def send(self, chat, replies, marks, meta):
        if self.crash:
            raise RuntimeError("a bug in the adapter")
        count, final = self.fail.pop(0) if self.fail else (len(replies), False)
        for reply in replies[:count]:
            self.sent.append((chat, reply.text, meta))
        return Sent(count, {**marks, "live": count == len(replies)}, final)


@pytest.fixture
def dlv(store, channel):
    return Delivery(store, channel, fake_step)


def inbound(text, uid, chat="c1", tag=None, meta=None):
    return Inbound(chat, "u1", uid, tag, UserInput(text=text), meta)


async def turn(dlv, text, uid, chat="c1", tag=None, meta=None):
    """What an adapter does: commit, then deliver."""
    t = await asyncio.to_thread(dlv.commit, inbound(text, uid, chat, tag, meta))
    await dlv.deliver(t, meta)
    return t


def outbox(store):
    return [
        tuple(r)
        for r in store.db.execute(
            "SELECT chat_id, input_uid, sent, status FROM outbox ORDER BY id"
        ).fetchall()
    ]


async def test_stored_with_its_outbox_row_then_sent_and_marked(dlv, store, channel):
    t = dlv.commit(inbound("hello", "1", meta="token"))
    assert t.status == "new" and [r.text for r in t.replies] == ["got hello", "next?"]
    # committed, nothing sent yet: the replies wait in the outbox, the marks were updated
    assert outbox(store) == [("c1", "1", 0, "pending")]
    assert dlv.marks("c1") == {"turns": 1, "live": False}
    assert [p.replies for p in t.pending] == [t.replies]
    await dlv.deliver(t, "token")
    assert channel.sent == [("c1", "got hello", "token"), ("c1", "next?", "token")]
    assert outbox(store) == []  # a row lives until its replies are all sent
    assert dlv.marks("c1") == {"turns": 1, "live": True}


async def test_a_redelivery_changes_nothing_and_resends_only_what_is_unsent(dlv, store, channel):
    await turn(dlv, "hello", "1")
    before = store.db.execute("SELECT count(*) FROM events").fetchone()
    again = await turn(dlv, "hello", "1")
    assert again.status == "duplicate" and again.pending == []
    assert len(channel.sent) == 2  # sent once only
    assert store.db.execute("SELECT count(*) FROM events").fetchone() == before

    channel.fail = [(1, False)]  # the second reply of "2" does not go out
    await turn(dlv, "more", "2")
    assert outbox(store)[-1] == ("c1", "2", 1, "pending")
    await turn(dlv, "more", "2")  # redelivered: only the reply that did not go out
    assert [text for _, text, _ in channel.sent[2:]] == ["got more", "next?"]
    assert outbox(store) == []


async def test_unsent_replies_go_first_on_the_next_input_and_by_the_flusher(dlv, store, channel):
    channel.fail = [(0, False)]
    await turn(dlv, "a", "1")
    assert channel.sent == [] and outbox(store) == [("c1", "1", 0, "pending")]
    await turn(dlv, "b", "2")  # the unsent turn goes out first: order is kept
    assert [text for _, text, _ in channel.sent] == ["got a", "next?", "got b", "next?"]

    channel.fail = [(0, False)]
    await turn(dlv, "c", "3", chat="c2")
    assert await dlv.flush() == 1  # what start-up and the periodic flush do
    assert channel.sent[-2:] == [("c2", "got c", None), ("c2", "next?", None)]
    assert outbox(store) == []  # all sent
    assert await dlv.flush() == 0


async def test_a_row_is_given_up_on_a_final_failure_or_after_max_attempts(dlv, store, channel):
    channel.fail = [(0, True)]  # e.g. the user blocked the bot
    await turn(dlv, "a", "1")
    assert outbox(store) == [("c1", "1", 0, "dropped")]
    channel.fail = [(0, False)] * core.MAX_ATTEMPTS
    await turn(dlv, "b", "2")
    for _ in range(core.MAX_ATTEMPTS - 1):
        await dlv.flush()
    assert outbox(store)[-1] == ("c1", "2", 0, "dropped")
    assert store.current("telegram", "c1")[1].answers == {"texts": ["a", "b"]}  # kept


async def test_a_failure_after_the_commit_never_raises(dlv, store, channel):
    channel.crash = True
    t = await turn(dlv, "a", "1")  # no exception reaches the adapter: the input is processed
    assert t.status == "new" and outbox(store) == [("c1", "1", 0, "pending")]
    channel.crash = False
    await dlv.flush()
    assert [text for _, text, _ in channel.sent] == ["got a", "next?"]


async def test_reused_ids_are_per_chat_and_a_new_tag_is_a_new_input(dlv, store, channel):
    """Telegram restarts update ids after a week without updates: the same id in another
    chat, or with another message id in the same chat, is a new input; no chat ever gets
    another's replies."""
    await turn(dlv, "mine", "7", chat="A", tag="m:1")
    other = await turn(dlv, "yours", "7", chat="B", tag="m:1")
    assert other.status == "new"
    assert [(c, text) for c, text, _ in channel.sent if c == "B"] == [
        ("B", "got yours"),
        ("B", "next?"),
    ]
    again = await turn(dlv, "later", "7", chat="A", tag="m:9")  # same chat, id restarted
    assert again.status == "new"
    assert store.current("telegram", "A")[1].answers == {"texts": ["mine", "later"]}
    assert (await turn(dlv, "later", "7", chat="A", tag="m:9")).status == "duplicate"
    assert (await turn(dlv, "x", "7", chat="A")).status == "duplicate"  # no tag: the id decides


async def test_stale_input_stores_nothing(dlv, store, channel):
    await turn(dlv, "a", "1")
    t = await turn(dlv, "b", "2", meta="old-button")
    assert t.status == "stale" and len(channel.sent) == 2
    assert store.db.execute("SELECT count(*) FROM inputs").fetchone() == (1,)


def test_a_storage_failure_is_not_stored_and_holds_the_chat(dlv, store, tmp_path, monkeypatch):
    """Disk full or a long lock: the input is not stored, so it must not be confirmed
    (NotStored); later inputs of that chat wait for it so that order is kept."""
    dlv.commit(inbound("a", "1"))
    store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(NotStored):
            dlv.commit(inbound("b", "2"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with pytest.raises(NotStored):  # "3" may not overtake "2"
        dlv.commit(inbound("c", "3"))
    assert dlv.commit(inbound("x", "9", chat="c2")).status == "new"  # other chats go on
    assert dlv.commit(inbound("b", "2")).status == "new"  # redelivered, stored now
    assert dlv.commit(inbound("c", "3")).status == "new"
    assert store.current("telegram", "c1")[1].answers == {"texts": ["a", "b", "c"]}
    # a held input that never comes back blocks its chat only for a while
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    with pytest.raises(NotStored, match="full"):
        dlv.commit(inbound("d" * 100_000, "4"))
    store.db.execute("PRAGMA max_page_count = 1073741823")
    clock = iter([1e9])
    monkeypatch.setattr(core.time, "monotonic", lambda: next(clock))
    assert dlv.commit(inbound("e", "5")).status == "new"


def test_a_failing_step_is_an_error_not_a_storage_failure(dlv, store):
    with pytest.raises(RuntimeError):
        dlv.commit(inbound("boom", "1"))
    assert dlv.commit(inbound("a", "2")).status == "new"  # the chat is not held


async def test_chat_locks_order_one_chat_and_forget_idle_ones():
    locks, seen = core.ChatLocks(), []

    async def work(chat, n):
        async with locks.hold(chat):
            await asyncio.sleep(0.01 if n == 0 else 0)
            seen.append((chat, n))

    await asyncio.gather(*(work(c, n) for n in range(3) for c in ("a", "b")))
    assert [n for c, n in seen if c == "a"] == [0, 1, 2]
    assert len(locks) == 0


async def test_a_chat_lock_waiter_cancelled_leaves_nothing_held():
    locks = core.ChatLocks()
    async with locks.hold("a"):
        waiter = asyncio.create_task(locks.hold("a").__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        assert waiter.cancelled()
    assert len(locks) == 0
    async with locks.hold("a"):  # free again
        pass


def test_deleting_a_conversation_takes_its_outbox_and_marks(dlv, store):
    dlv.commit(inbound("a", "1"))
    store.delete_user("u1")
    assert outbox(store) == [] and dlv.marks("c1") == {}


async def test_replies_sent_but_not_noted_are_noted_later_not_sent_again(dlv, store, channel):
    t = dlv.commit(inbound("a", "1"))
    store.db.execute("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        await dlv.deliver(t)  # sent; the mark cannot be written
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(channel.sent) == 2 and outbox(store) == [("c1", "1", 0, "pending")]
    await dlv.flush()
    assert len(channel.sent) == 2 and outbox(store) == []


async def until(predicate, tries: int = 1000) -> None:
    """Let the loop run until `predicate()` holds (retries are tasks of their own)."""
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("never happened")


def attempts(store) -> list[int]:
    return [r[0] for r in store.db.execute("SELECT attempts FROM outbox ORDER BY id")]


async def test_a_failed_send_is_retried_soon_with_back_off_then_left_to_the_flusher(
    dlv, store, channel, monkeypatch
):
    monkeypatch.setattr(core, "RETRY_S", (0.01, 0.02))
    channel.fail = [(0, False)] * 3  # the send and both early retries fail
    await turn(dlv, "a", "1")
    await until(lambda: attempts(store) == [3] and not dlv._retries)
    assert channel.sent == [] and outbox(store) == [("c1", "1", 0, "pending")]  # bounded
    await turn(dlv, "b", "2")  # the unsent one first: order
    assert [text for _, text, _ in channel.sent] == ["got a", "next?", "got b", "next?"]

    channel.fail = [(0, False)]  # got through since: the back-off starts afresh
    await turn(dlv, "c", "3")
    await until(lambda: outbox(store) == [])  # sent by the first early retry, row gone
    assert [text for _, text, _ in channel.sent[-2:]] == ["got c", "next?"]


async def test_after_stop_nothing_is_sent_nor_retried_and_the_rows_stay(dlv, store, channel):
    channel.fail = [(0, False)]
    await turn(dlv, "a", "1")
    assert dlv._retries  # an early retry is scheduled
    await dlv.stop()
    assert not dlv._retries
    await turn(dlv, "b", "2")  # still stored (the input is processed), not sent
    assert await dlv.flush() == 1
    assert channel.sent == []
    assert outbox(store) == [("c1", "1", 0, "pending"), ("c1", "2", 0, "pending")]


async def test_a_refusal_notice_survives_a_crash_before_it_is_sent(store, channel):
    """Flow control: the refused input and the notice asking to wait are one transaction, so a
    crash between noting the input and sending the notice cannot leave the flooder unanswered;
    a redelivery of the refused input queues no second notice."""
    from dialogs.io import Reply

    notice = Reply(key="robustness.flood.wait", text="please wait")
    first = Delivery(store, channel, fake_step)
    assert first.refuse(inbound("flood-1", "9"), notice) is True
    assert first.refuse(inbound("flood-1", "9"), notice) is False  # redelivered: noted already
    assert first.refuse(inbound("flood-2", "10")) is False  # later refusals of a burst: silent
    assert outbox(store) == [("c1", "9", 0, "pending")] and channel.sent == []  # "crash"
    restarted = Delivery(store, channel, fake_step)
    assert await restarted.flush() == 1
    assert channel.sent == [("c1", "please wait", None)]
    assert outbox(store) == []
    assert (await turn(restarted, "hello", "11")).status == "new"  # the chat goes on


async def test_send_soon_sends_a_queued_notice_behind_the_chat_s_turns(dlv, store, channel):
    from dialogs.io import Reply

    assert dlv.refuse(inbound("x", "5"), Reply(key="k", text="please wait"))
    dlv.send_soon("c1")
    await asyncio.gather(*dlv._retries.values())
    assert channel.sent == [("c1", "please wait", None)] and outbox(store) == []
