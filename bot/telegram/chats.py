"""What the Telegram adapter remembers per chat beside the conversation (table telegram_chats,
storage migration 3): the message whose inline keyboard is live, so a press on any other
keyboard is stale, and the last update whose replies were all sent, so a redelivered update is
answered again only if its replies may not have gone out.

The row points at the chat's conversation with ON DELETE CASCADE: deleting a user's
conversations (/delete, `admin delete-user`, `admin purge`) removes it too."""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.storage import Storage


@dataclass(frozen=True)
class ChatMarks:
    keyboard_message_id: int | None = None
    done_update_id: int | None = None


def marks(storage: Storage, chat_id: int | str) -> ChatMarks:
    with storage.lock:
        row = storage.db.execute(
            "SELECT keyboard_message_id, done_update_id FROM telegram_chats WHERE chat_id = ?",
            [str(chat_id)],
        ).fetchone()
    return ChatMarks(*row) if row else ChatMarks()


def record(
    storage: Storage,
    chat_id: int | str,
    conversation_id: int,
    keyboard_message_id: int | None,
    done_update_id: int | None,
) -> None:
    """After a turn was sent: its keyboard message (None: no live keyboard) and, if every reply
    went out, its update id (the mark only moves forward)."""
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    with storage.lock, contextlib.suppress(sqlite3.IntegrityError):  # conversation gone: no row
        storage.db.execute(  # one statement: sqlite-utils commits it
            "INSERT INTO telegram_chats (chat_id, conversation_id, keyboard_message_id,"
            " done_update_id, updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET conversation_id = excluded.conversation_id,"
            " keyboard_message_id = excluded.keyboard_message_id,"
            " done_update_id = max(coalesce(done_update_id, 0),"
            " coalesce(excluded.done_update_id, 0)), updated_at = excluded.updated_at",
            [str(chat_id), conversation_id, keyboard_message_id, done_update_id, now],
        )
