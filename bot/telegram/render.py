"""Dialog replies as Telegram messages: HTML-escaped text cut to the message limit, and the
choices as an inline keyboard. Pure functions, no network."""

from __future__ import annotations

import functools
import html
import json
import logging
import unicodedata
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from dialogs.io import Choice, Reply

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096  # Telegram counts UTF-16 code units of the text after entity parsing
MAX_CALLBACK_DATA = 64  # bytes
ROW_WIDTH = 32  # display columns a phone shows comfortably on one keyboard row
MAX_COLUMNS = 3


@dataclass(frozen=True)
class Outgoing:
    html: str
    keyboard: InlineKeyboardMarkup | None = None
    reply: int = 0  # index of the reply it is (a chunk of) in the turn
    keyboard_json: str | None = None  # the keyboard as the Bot API takes it (made once)


def escape(text: str) -> str:
    """Everything is text: the dialog echoes what users typed, so no markup may get through."""
    return html.escape(text, quote=False)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _hard_split(line: str, limit: int) -> list[str]:
    """A line longer than the limit, cut between characters (never inside a surrogate pair)."""
    pieces, piece, size = [], [], 0
    for char in line:
        width = _units(char)
        if size + width > limit:
            pieces.append("".join(piece))
            piece, size = [], 0
        piece.append(char)
        size += width
    pieces.append("".join(piece))
    return pieces


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Plain text in chunks of at most `limit` units, cut at line ends where possible.
    Chunks that would be blank (Telegram refuses empty messages) are left out."""
    if len(text) <= limit // 2:  # a character is at most 2 units: it fits whole (the usual case)
        return [text] if text.strip() else []
    chunks, lines, size = [], [], 0
    for line in text.split("\n"):
        for piece in _hard_split(line, limit) if _units(line) > limit else [line]:
            extra = _units(piece) + (1 if lines else 0)  # +1: the newline joining it
            if lines and size + extra > limit:
                chunks.append("\n".join(lines))
                lines, size, extra = [], 0, _units(piece)
            lines.append(piece)
            size += extra
    chunks.append("\n".join(lines))
    return [c for c in chunks if c.strip()]


def _width(label: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in label)


def keyboard(choices: list[Choice]) -> InlineKeyboardMarkup | None:
    """One button per choice (callback data = its value). Short labels share rows, the same
    number on every row; a value over 64 bytes cannot be a button (it can still be typed)."""
    return _keyboard(tuple((c.value, c.label) for c in choices))


@functools.lru_cache(maxsize=512)
def _keyboard_json(choices: tuple[tuple[str, str], ...]) -> str | None:
    """The keyboard serialised as python-telegram-bot would for each request, once."""
    markup = _keyboard(choices)
    return None if markup is None else json.dumps(markup.to_dict(), ensure_ascii=False)


@functools.lru_cache(maxsize=512)  # the same questions' choices, over and over: built once
def _keyboard(choices: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    fitting = []
    for value, label in choices:
        if 0 < len(value.encode("utf-8")) <= MAX_CALLBACK_DATA:
            fitting.append(Choice(value=value, label=label))
        else:
            log.warning("choice value too long for callback data, left out: %r", value)
    if not fitting:
        return None
    widest = max(_width(c.label) for c in fitting)
    columns = max(1, min(MAX_COLUMNS, ROW_WIDTH // (widest + 4)))  # +4: button padding
    buttons = [InlineKeyboardButton(c.label, callback_data=c.value) for c in fitting]
    return InlineKeyboardMarkup([buttons[i : i + columns] for i in range(0, len(buttons), columns)])


def messages(replies: list[Reply]) -> list[Outgoing]:
    """The turn's messages. Only the last reply with choices gets its keyboard (on its last
    chunk): those are the choices the dialog now accepts, so one live keyboard per chat."""
    keyed = max((i for i, r in enumerate(replies) if r.choices), default=None)
    out = []
    for i, reply in enumerate(replies):
        chunks = split_text(reply.text)
        for n, chunk in enumerate(chunks, 1):
            if i == keyed and n == len(chunks):
                choices = tuple((c.value, c.label) for c in reply.choices)
                out.append(Outgoing(escape(chunk), _keyboard(choices), i, _keyboard_json(choices)))
            else:
                out.append(Outgoing(escape(chunk), None, i))
    return out


def preformatted(text: str) -> list[Outgoing]:
    """Reports with aligned columns (admin commands), each chunk in its own <pre> block."""
    return [Outgoing(f"<pre>{escape(chunk)}</pre>") for chunk in split_text(text)]
