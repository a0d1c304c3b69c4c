"""The delivery core that every face (Telegram, LINE, the console) calls: one input in, stored
before anything is sent, sent in order, marked sent.

    input (chat, uid, tag) ─► commit ──────────────────────────────► deliver ─► mark
                              one transaction:                        channel    one transaction:
                              dedup on (channel, chat, uid[, tag])    .send()    outbox row sent,
                              load state, step                                   channel's marks
                              'in' + 'out' events, new state
                              outbox row "to send", channel's marks

- `commit` (synchronous; from async code `await commit_async`, which batches with other chats'
  inputs through bot/writer.py) returns a `Turn`: "new",
  "duplicate" (the input was stored before: nothing changes) or "stale" (the channel says the
  input answers something no longer asked: nothing is stored). A storage failure raises
  `NotStored`: the adapter must then NOT confirm the input to its service, which redelivers it;
  until that input is stored, later inputs of the same chat are refused too (order).
- `deliver(turn)` sends the chat's unsent replies (`turn.pending`: earlier turns' leftovers
  first, then this turn's) and marks each outbox row; a row not fully sent stays "to send" and
  the rest wait behind it. It never raises: after the commit the input is processed, whatever
  happens to the sending. A chat whose row failed (not finally) is tried again after each
  `RETRY_S` delay in turn (one retry pending per chat; the delays start afresh once it gets
  through). `flush()` does the same for every chat with unsent replies: at start-up and every
  `FLUSH_S` seconds (`run_flusher`).
- `stop()` on shutdown: no new sends, no retries, the channel's back-off waits end (it gets the
  core's `stopping` event); the unsent stays in the outbox for the next start.
- The caller holds the chat's lock (`locks.hold(chat)`) around commit and deliver; the flusher
  takes the same lock, so one chat's replies never overtake each other.

A channel implements `Channel` (subclass it):

- `name`: the `conversations.channel` value ("telegram", "line", "console").
- `outbox`: False for a face that shows the replies as `commit` returns them (the console).
- `stale(inbound, marks) -> bool`: does this input belong to something no longer asked (an old
  keyboard)? Called inside the commit transaction, after dedup. Default: never.
- `committed(marks) -> marks`: the chat's marks as written with a new turn (Telegram: the live
  keyboard becomes one to remove). Default: unchanged.
- `async send(chat, replies, marks, meta) -> Sent`: send in order, stop at the first failure;
  `Sent(count, marks, final)` says how many replies went out entirely, the marks to keep, and
  whether a failure is final (user blocked the bot: the row is dropped, not retried). `meta` is
  the live input's channel data (LINE: its reply token), None when flushing.

Marks are a small JSON object per (channel, chat) in table `chats`, the channel's business.
Ids: `chat` is the channel's chat id as text; `uid` the input's id (Telegram: bot id and update
id); `tag` tells a new input from a redelivery when the service reuses ids (Telegram's update
ids restart after a week without updates: the message or callback query id is the tag).
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from bot.storage import Remembered, Storage, conversation_status
from dialogs.io import Reply, State, UserInput

if TYPE_CHECKING:  # imported where used: the console (synchronous commits) never loads asyncio
    import asyncio

    from bot.writer import Writer

log = logging.getLogger(__name__)

Step = Callable[[State, UserInput], tuple[State, list[Reply]]]
Marks = dict[str, Any]

FLUSH_S = 60.0  # how often unsent replies are tried again
RETRY_S = (
    2.0,
    4.0,
    8.0,
    16.0,
)  # a chat's failed send is tried again this soon, then by the flusher
MAX_ATTEMPTS = 14  # then a row is given up ('dropped'); the answer itself stays stored
_INSERT_OUTBOX = (
    "INSERT INTO outbox (channel, chat_id, id, conversation_id, input_uid, first_seq, last_seq,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_marks_json: Callable[[Marks], str] = json.JSONEncoder().encode  # json.dumps, made once
HOLD_S = 120.0  # how long a chat waits for its unstored input to come back before moving on


@dataclass(frozen=True)
class Inbound:
    """One input from a channel."""

    chat: str
    user: str | None
    uid: str | None  # the dedup key within the chat; None: never deduplicated
    tag: str | None  # tells a reused uid from a redelivery (None: the uid alone decides)
    input: UserInput
    meta: Any = None  # the channel's own data for `stale` and `send`


@dataclass(frozen=True)
class Pending:
    """An outbox row's replies not yet sent."""

    outbox_id: int
    uid: str | None
    replies: list[Reply]


@dataclass(frozen=True)
class Turn:
    chat: str
    status: Literal["new", "duplicate", "stale"]
    uid: str | None = None
    conversation_id: int | None = None
    state: State | None = None  # after the step ("new" only)
    replies: list[Reply] = field(default_factory=list)  # this input's replies ("new" only)
    pending: list[Pending] = field(default_factory=list)  # the chat's unsent, oldest first
    marks: Marks = field(default_factory=dict)


@dataclass(frozen=True)
class Sent:
    count: int  # replies that went out entirely, from the first
    marks: Marks
    final: bool = False  # the failure will not get better: give the row up


class NotStored(Exception):
    """The input was not stored (disk full, database locked too long): do not confirm it."""


class Channel:
    """What differs between channels; see the module docstring."""

    name = "console"
    outbox = True

    def stale(self, inbound: Inbound, marks: Marks) -> bool:
        return False

    def committed(self, marks: Marks) -> Marks:
        return marks

    stopping: asyncio.Event | None = None  # the core's: set on shutdown, retry no more

    async def send(self, chat: str, replies: list[Reply], marks: Marks, meta: Any) -> Sent:
        raise NotImplementedError


class ChatLocks:
    """One asyncio lock per chat, forgotten when idle. Waiters are served in arrival order."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: Counter[str] = Counter()

    def hold(self, chat: str) -> _Hold:
        """`async with locks.hold(chat):` the chat's turn."""
        return _Hold(self, chat)

    def _leave(self, chat: str) -> None:
        self._users[chat] -= 1
        if not self._users[chat]:
            del self._users[chat], self._locks[chat]

    def __len__(self) -> int:
        return len(self._locks)


class _Hold:
    """ChatLocks.hold's context (a class, not a generator: it is entered for every update)."""

    __slots__ = ("locks", "chat", "lock")

    def __init__(self, locks: ChatLocks, chat: str) -> None:
        self.locks, self.chat = locks, chat

    async def __aenter__(self) -> None:
        import asyncio

        locks, chat = self.locks, self.chat
        self.lock = locks._locks.get(chat) or locks._locks.setdefault(chat, asyncio.Lock())
        locks._users[chat] += 1
        try:
            await self.lock.acquire()
        except BaseException:  # cancelled while waiting: never held
            locks._leave(chat)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()
        self.locks._leave(self.chat)


class Delivery:
    def __init__(self, storage: Storage, channel: Channel, step: Step, lang: str = "ja") -> None:
        self.storage, self.channel, self.step, self.lang = storage, channel, step, lang
        self.locks = ChatLocks()
        self._held: dict[str, tuple[str | None, float]] = {}  # chat -> (unstored uid, until)
        self._unnoted: dict[int, Sent] = {}  # outbox id -> what went out, its mark not written
        self._stopping: asyncio.Event | None = None
        if channel.outbox:  # a face that sends: its channel waits on the core's event
            channel.stopping = self.stopping
        self._retries: dict[str, asyncio.Task] = {}  # chat -> its early retry, scheduled
        self._failed: Counter[str] = (
            Counter()
        )  # chat -> early retries used since it last got through

    @functools.cached_property
    def writer(self) -> Writer:
        """The async commits' writer (bot/writer.py), made on first use like `stopping`."""
        from bot.writer import Writer

        return Writer(self.storage)

    @property
    def stopping(self) -> asyncio.Event:
        """Shutdown: no new sends, no retries (see `stop`). Made on first use, so that the
        console, which only commits, does not import asyncio."""
        if self._stopping is None:
            import asyncio

            self._stopping = self.channel.stopping = asyncio.Event()
        return self._stopping

    # --- commit (synchronous) ---

    def commit(self, inbound: Inbound) -> Turn:
        """Dedup, step and store one input in one transaction; see the module docstring."""
        self._check_held(inbound)
        try:
            turn = self._commit(inbound)
        except sqlite3.OperationalError as exc:
            raise self._not_stored(inbound, exc) from exc
        self._held.pop(inbound.chat, None)
        return turn

    async def commit_async(self, inbound: Inbound) -> Turn:
        """`commit` from async code: through the writer (bot/writer.py), on the event loop, in
        a transaction shared with whatever other chats' inputs arrive meanwhile; returns after
        the commit, like `commit`."""
        self._check_held(inbound)
        try:
            turn = await self.writer.submit(lambda db: self._turn(db, inbound))
        except sqlite3.OperationalError as exc:
            raise self._not_stored(inbound, exc) from exc
        self._held.pop(inbound.chat, None)
        return turn

    def _check_held(self, inbound: Inbound) -> None:
        """Order: while an earlier input of the chat is not stored, later ones are refused."""
        held = self._held.get(inbound.chat)
        if held is not None and time.monotonic() >= held[1]:
            self._held.pop(inbound.chat, None)  # it never came back: do not block for ever
        elif held is not None and held[0] != inbound.uid:
            raise NotStored("an earlier input of this chat is not stored yet")

    def _not_stored(self, inbound: Inbound, exc: Exception) -> NotStored:
        """Full, locked, I/O: it may work next time; the chat waits for this input."""
        self._held.setdefault(inbound.chat, (inbound.uid, time.monotonic() + HOLD_S))
        return NotStored(str(exc))

    def refuse(self, inbound: Inbound, notice: Reply | None = None) -> bool:
        """Note a refused input (flow control: its chat had too many waiting) as handled, without
        stepping: if its confirmation is lost in a crash, its redelivery is a duplicate, never
        an input read after later ones. A `notice` to the user goes into the outbox in the same
        transaction, so a crash cannot lose it; `send_soon` sends it. Returns whether one was
        queued. Raises NotStored when that cannot be written."""
        if inbound.uid is None:
            return False
        storage, channel = self.storage, self.channel.name
        try:
            with storage.transaction() as db:
                cid, _ = storage.load(channel, inbound.chat, inbound.user, self.lang)
                now = storage.now()
                new = db.execute(
                    "INSERT INTO inputs (channel, chat_id, uid, tag, conversation_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, chat_id, uid) DO NOTHING",
                    [channel, inbound.chat, inbound.uid, inbound.tag, cid],
                ).rowcount
                if not (new and notice is not None and self.channel.outbox):
                    return False
                seq, event_id = storage.note_reply(cid, inbound.uid, notice, now)
                row = [channel, inbound.chat, event_id, cid, inbound.uid, seq, seq, now]
                db.execute(_INSERT_OUTBOX, row)
                return True
        except sqlite3.OperationalError as exc:
            raise NotStored(str(exc)) from exc

    def _commit(self, inbound: Inbound) -> Turn:
        with self.storage.transaction() as db:
            return self._turn(db, inbound)

    def _turn(self, db: sqlite3.Connection, inbound: Inbound) -> Turn:
        """The commit's body, inside the transaction."""
        storage, channel, chat, uid = self.storage, self.channel.name, inbound.chat, inbound.uid
        known = storage.recall(channel, chat)  # what its last turn left, if remembered
        if known is not None:
            marks_json = known.marks
        else:
            row = db.execute(
                "SELECT marks_json FROM chats WHERE channel = ? AND chat_id = ?", [channel, chat]
            ).fetchone()
            marks_json = row[0] if row else "{}"
        listed = known is not None or row is not None  # False: the chat has no row in `chats`
        marks = json.loads(marks_json)
        noted = 0  # the input's row written already (its conversation known before the step)
        if uid is not None:
            if known is not None:  # a new input (the usual case) is noted without a look-up
                noted = db.execute(
                    "INSERT INTO inputs (channel, chat_id, uid, tag, conversation_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, chat_id, uid) DO NOTHING",
                    [channel, chat, uid, inbound.tag, known.conversation_id],
                ).rowcount
            seen = None if noted else db.execute(
                "SELECT tag FROM inputs WHERE channel = ? AND chat_id = ? AND uid = ?",
                [channel, chat, uid],
            ).fetchone()  # fmt: skip
            if seen is not None and (None in (seen[0], inbound.tag) or seen[0] == inbound.tag):
                none = known is not None and known.unsent == ()  # nothing to send: no look
                pending = [] if none else self._pending(chat)
                return Turn(chat, "duplicate", uid, pending=pending, marks=marks)
            # else: a reused id with another tag is a new input
        if self.channel.stale(inbound, marks):
            if noted:  # nothing of a stale input is stored
                db.execute(
                    "DELETE FROM inputs WHERE channel = ? AND chat_id = ? AND uid = ?",
                    [channel, chat, uid],
                )
                storage.remember(channel, chat, known)  # its rows are as they were
            return Turn(chat, "stale", uid, marks=marks)

        if known is not None:
            cid, state = known.conversation_id, known.state
        else:
            cid, state = storage.load(channel, chat, inbound.user, self.lang)
        new_state, replies = self.step(state, inbound.input)
        now = storage.now()
        first, last, event_id = storage.record(
            cid, inbound.user, uid, inbound.input, new_state, replies, now, known
        )
        if uid is not None and not noted:  # a chat not remembered, or a reused id: noted now
            db.execute(
                "INSERT INTO inputs (channel, chat_id, uid, tag, conversation_id)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, chat_id, uid) DO UPDATE"
                " SET tag = excluded.tag, conversation_id = excluded.conversation_id",
                [channel, chat, uid, inbound.tag, cid],
            )
        pending, unsent = [], None if known is None else known.unsent
        if replies and self.channel.outbox:
            db.execute(_INSERT_OUTBOX, [channel, chat, event_id, cid, uid, first, last, now])
            marks = self.channel.committed(marks)
            marks_json = _marks_json(marks)
            # the chat's conversation rarely changes: then its index entry is not rewritten
            if (
                not listed
                or not db.execute(
                    "UPDATE chats SET marks_json = ?, updated_at = ?"
                    " WHERE channel = ? AND chat_id = ? AND conversation_id = ?",
                    [marks_json, now, channel, chat, cid],
                ).rowcount
            ):
                db.execute(
                    "INSERT INTO chats (channel, chat_id, conversation_id, marks_json, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, chat_id) DO UPDATE SET"
                    " conversation_id = excluded.conversation_id,"
                    " marks_json = excluded.marks_json, updated_at = excluded.updated_at",
                    [channel, chat, cid, marks_json, now],
                )
            if unsent == ():  # nothing else waits: the outbox is not read
                pending = [Pending(event_id, uid, list(replies))]
            else:
                pending = self._pending(chat, {event_id: list(replies)})
            unsent = tuple(p.outbox_id for p in pending)
        last_id = event_id + last - first  # ids and seqs both consecutive in a turn
        user = inbound.user is not None or (known is not None and known.user)  # its user id
        status = conversation_status(new_state)
        entry = Remembered(cid, status, new_state, last, marks_json, unsent, user)
        storage.remember(channel, chat, entry, last_id)  # after the body's last write
        return Turn(chat, "new", uid, cid, new_state, list(replies), pending, marks)

    def _pending(self, chat: str, fresh: dict[int, list[Reply]] | None = None) -> list[Pending]:
        """The chat's unsent outbox rows; `fresh`: rows just written, whose replies are known
        (the usual case: only this turn's row, read back from no event)."""
        fresh = fresh or {}
        rows = self.storage.conn.execute(
            "SELECT id, conversation_id, input_uid, first_seq + sent, last_seq FROM outbox"
            " WHERE channel = ? AND chat_id = ? AND status = 'pending' ORDER BY id",
            [self.channel.name, chat],
        ).fetchall()
        return [
            Pending(i, uid, fresh[i] if i in fresh else self.storage.replies(cid, a, b))
            for i, cid, uid, a, b in rows
        ]

    def pending(self, chat: str) -> tuple[list[Pending], Marks]:
        """The chat's unsent replies and its marks (what the flusher sends)."""
        with self.storage.reading():
            return self._pending(chat), self.marks(chat)

    def _chats_pending(self) -> list[str]:
        with self.storage.reading():
            sql = "SELECT DISTINCT chat_id FROM outbox WHERE channel = ? AND status = 'pending'"
            return [r[0] for r in self.storage.conn.execute(sql, [self.channel.name])]

    def marks(self, chat: str) -> Marks:
        with self.storage.reading():
            row = self.storage.conn.execute(
                "SELECT marks_json FROM chats WHERE channel = ? AND chat_id = ?",
                [self.channel.name, chat],
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def mark(self, chat: str, pending: Pending, sent: Sent) -> None:
        """Note what went out of an outbox row, and the chat's new marks, in one transaction.
        A conversation deleted meanwhile took its rows along: then nothing is noted. Without
        an fsync: a power cut may undo the note, and the replies are then sent once more."""
        with self.storage.transaction(fsync=False) as db:
            self._mark(db, chat, pending, sent)

    def _mark(self, db: sqlite3.Connection, chat: str, pending: Pending, sent: Sent) -> None:
        known = self.storage.recall(self.channel.name, chat)
        now, key = self.storage.now(), [self.channel.name, chat, pending.outbox_id]
        unsent = None  # after a partial send (the row may be given up): not known
        if sent.count >= len(pending.replies):  # all out: the row goes
            db.execute("DELETE FROM outbox WHERE channel = ? AND chat_id = ? AND id = ?", key)
            if known is not None and known.unsent and pending.outbox_id in known.unsent:
                unsent = tuple(i for i in known.unsent if i != pending.outbox_id)
        else:
            db.execute(
                "UPDATE outbox SET sent = sent + ?, attempts = attempts + 1,"
                " status = CASE WHEN ? OR attempts + 1 >= ? THEN 'dropped' ELSE status END,"
                " done_at = CASE WHEN ? OR attempts + 1 >= ? THEN ? END"
                " WHERE channel = ? AND chat_id = ? AND id = ?",
                [sent.count, sent.final, MAX_ATTEMPTS, sent.final, MAX_ATTEMPTS, now, *key],
            )
        marks_json = _marks_json(sent.marks)
        changed = db.execute(
            "UPDATE chats SET marks_json = ?, updated_at = ? WHERE channel = ? AND chat_id = ?",
            [marks_json, now, self.channel.name, chat],
        ).rowcount
        if known is not None and changed:  # the memory's own entry, updated after the writes:
            known.marks, known.unsent = marks_json, unsent  # new marks and unsent rows
        self.storage.remember(self.channel.name, chat, known if changed else None)

    # --- sending (async) ---

    async def deliver(self, turn: Turn, meta: Any = None) -> None:
        """Send `turn.pending` in order (the live input's `meta` goes with its own row)."""
        await self._send(turn.chat, turn.pending, turn.marks, turn.uid, meta)

    async def _send(
        self, chat: str, pending: list[Pending], marks: Marks, uid: str | None, meta: Any
    ) -> None:
        for row in pending:
            if self.stopping.is_set():
                return  # shutting down: the rest stays in the outbox for the next start
            sent = self._unnoted.pop(row.outbox_id, None)  # sent before, only not noted
            if sent is None:
                try:
                    live = meta if uid is not None and row.uid == uid else None
                    sent = await self.channel.send(chat, row.replies, marks, live)
                except Exception:  # a bug in sending: the answer is stored, try again later
                    log.exception("sending to a chat failed; its replies stay in the outbox")
                    sent = Sent(0, marks)
            try:  # in the writer's next batch: its order behind this chat's turn is kept
                note = functools.partial(self._mark, chat=chat, pending=row, sent=sent)
                await self.writer.submit(note, durable=False)
            except sqlite3.Error as exc:  # noted on the next try instead of sent again
                self._unnoted[row.outbox_id] = sent
                log.error("could not note replies as sent (%s); will note it later", exc)
            if sent.count < len(row.replies):
                if not sent.final:
                    self._retry_later(chat)
                return  # later replies wait behind this one: order
            marks = sent.marks
        self._failed.pop(chat, None)  # all out: the next failure starts the back-off afresh

    def _retry_later(self, chat: str) -> None:
        """Try the chat's unsent replies again after the next RETRY_S delay (one retry
        scheduled per chat at a time; when RETRY_S is used up, the flusher's turn)."""
        import asyncio

        used = self._failed[chat]
        if chat in self._retries or used >= len(RETRY_S) or self.stopping.is_set():
            return
        self._failed[chat] = used + 1
        self._retries[chat] = asyncio.create_task(self._retry(chat, RETRY_S[used]))

    async def _retry(self, chat: str, delay: float) -> None:
        import asyncio

        await asyncio.sleep(delay)
        async with self.locks.hold(chat):  # behind the chat's live turns: order
            del self._retries[chat]  # from here a failure may schedule the next one
            try:
                pending, marks = await asyncio.to_thread(self.pending, chat)
                await self._send(chat, pending, marks, None, None)
            except Exception:  # the outbox keeps the rows: the flusher tries them
                log.exception("retrying a chat's unsent replies failed")

    def send_soon(self, chat: str) -> None:
        """Send the chat's unsent rows behind its live turns (a notice queued by `refuse`)."""
        import asyncio

        if chat not in self._retries and not self.stopping.is_set():
            self._retries[chat] = asyncio.create_task(self._retry(chat, 0))

    async def stop(self) -> None:
        """Shutdown: no new sends and no retries (a send under way fails at its next back-off);
        what is unsent stays in the outbox for the next start."""
        import asyncio

        self.stopping.set()
        retries = list(self._retries.values())
        for task in retries:
            task.cancel()
        await asyncio.gather(*retries, return_exceptions=True)
        self._retries.clear()
        self.writer.close()  # what is queued is written first

    async def flush(self) -> int:
        """Send every chat's unsent replies; returns how many chats had some."""
        import asyncio

        chats = await asyncio.to_thread(self._chats_pending)

        async def one(chat: str) -> None:
            async with self.locks.hold(chat):
                pending, marks = await asyncio.to_thread(self.pending, chat)
                await self._send(chat, pending, marks, None, None)

        await asyncio.gather(*(one(chat) for chat in chats))
        return len(chats)

    async def run_flusher(self, interval: float = FLUSH_S) -> None:
        """At start-up and every `interval` seconds: send what is still to send."""
        import asyncio

        while True:
            try:
                if count := await self.flush():
                    log.info("sent the unsent replies of %d chat(s)", count)
            except sqlite3.Error as exc:
                log.error("could not read the outbox: %s", exc)
            except Exception:  # a bug: keep the flusher alive, the rows stay in the outbox
                log.exception("flushing the outbox failed")
            await asyncio.sleep(interval)
