"""Dialog replies as LINE message objects (plain JSON, as the Messaging API takes them). Pure
functions, no network.

LINE's limits shape everything here: a text message holds at most 5,000 characters, a reply or
push call carries at most 5 messages, a quick reply at most 13 items, and an action label at most
20 characters (LINE refuses the whole call beyond any of them). So:

- each reply's text is cut at line ends into messages of at most 5,000 characters;
- the turn's choices become quick reply postback actions on the LAST message (LINE shows only
  the last message's quick reply): data = the dialog's choice value, label = a short label from
  the locales (``line.labels``), displayText = the full label, which the chat shows as the
  user's message;
- where a short label hides the full wording, the full names follow the question as a
  list (numbered under a question: typing the number selects it, as in the console); more than
  13 choices (the summary's edit list) are sent only as that list;
- free quick reply places get the commands back, summary, help and restart as message actions
  (they send the word, which the dialog understands anywhere);
- `batches` groups the messages 5 per call.
"""

from __future__ import annotations

import logging

from bot.telegram.render import split_text
from dialogs.io import Choice, Reply
from locales import has, t

log = logging.getLogger(__name__)

MAX_TEXT = 5000  # UTF-16 code units, as split_text counts
MAX_MESSAGES = 5
MAX_ITEMS = 13
MAX_LABEL = 20
MAX_DATA = 300  # postback data and displayText
COMMANDS = ("back", "summary", "help", "restart")  # in the order they get a free place

Message = dict


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fit(text: str, limit: int) -> str:
    """At most `limit` UTF-16 units, with an ellipsis when cut (never inside a surrogate pair)."""
    if _units(text) <= limit:
        return text
    out = ""
    for char in text:
        if _units(out + char) > limit - 1:
            break
        out += char
    return out + "…"


def label(choice: Choice, lang: str) -> str:
    """The quick reply label: the short one from the locales, else the choice's own label if
    it fits (yes/no, commands), else cut (a missing short label: logged, and a test fails)."""
    field, sep, value = choice.value.partition(":")
    command, _, arg = choice.value.partition(" ")
    if sep and has(key := f"line.labels.{field}.{value}", lang):
        return t(key, lang)
    fits = _units(choice.label) <= MAX_LABEL
    if command == "/edit" and not fits and has(f"line.fields.{arg}", lang):
        return t("line.edit_button", lang, field=t(f"line.fields.{arg}", lang))
    if not fits:
        log.warning("no short LINE label for choice %r; cut", choice.value)
    return _fit(choice.label, MAX_LABEL)


def _postback(choice: Choice, lang: str) -> dict:
    return {
        "type": "action",
        "action": {
            "type": "postback",
            "label": label(choice, lang),
            "data": choice.value,
            "displayText": _fit(choice.label, MAX_DATA),
        },
    }


def _command(name: str, lang: str) -> dict:
    word = t(f"line.commands.{name}", lang)
    return {"type": "action", "action": {"type": "message", "label": word, "text": word}}


def quick_reply(choices: list[Choice], lang: str) -> dict | None:
    """The choices (if 13 fit), then the commands not already among them while places are left."""
    items = [_postback(c, lang) for c in choices if 0 < len(c.value) <= MAX_DATA]
    if len(items) > MAX_ITEMS:
        items = []  # sent as a numbered list instead
    shown = {i["action"]["label"] for i in items} | {c.label for c in choices}
    for name in COMMANDS:
        if len(items) < MAX_ITEMS and t(f"line.commands.{name}", lang) not in shown:
            items.append(_command(name, lang))
    return {"items": items} if items else None


def choice_list(choices: list[Choice], numbered: bool) -> str:
    """The full wording of the choices, when the quick reply cannot show it."""
    lines = [f"{n}. {c.label}" if numbered else f"- {c.label}" for n, c in enumerate(choices, 1)]
    return "\n".join(lines)


def _needs_list(choices: list[Choice], lang: str) -> bool:
    return len(choices) > MAX_ITEMS or any(label(c, lang) != c.label for c in choices)


def per_reply(replies: list[Reply], lang: str) -> list[list[Message]]:
    """Each reply's text messages; the choices of the last reply that has any go on the very
    last message as its quick reply (with the commands). The full names are numbered under a
    question (a typed number selects, as in the console); elsewhere (the summary's list, where a
    number may be the answer awaited) they are bullets, to be typed or tapped."""
    keyed = max((i for i, r in enumerate(replies) if r.choices), default=None)
    out: list[list[Message]] = []
    for i, reply in enumerate(replies):
        text = reply.text
        if i == keyed and _needs_list(reply.choices, lang):
            numbered = reply.key.startswith("question.")
            text = f"{text}\n\n{choice_list(reply.choices, numbered)}"
        out.append([{"type": "text", "text": chunk} for chunk in split_text(text, MAX_TEXT)])
    last = next((group for group in reversed(out) if group), None)
    quick = quick_reply(replies[keyed].choices if keyed is not None else [], lang)
    if last and quick:
        last[-1]["quickReply"] = quick
    return out


def messages(replies: list[Reply], lang: str) -> list[Message]:
    return [m for group in per_reply(replies, lang) for m in group]


def calls(replies: list[Reply], lang: str) -> list[tuple[list[Message], int]]:
    """The messages in calls of at most 5, a reply kept within one call where it fits; with
    each call, how many replies are entirely sent once it has gone."""
    out: list[tuple[list[Message], int]] = []
    batch: list[Message] = []
    for n, group in enumerate(per_reply(replies, lang), 1):
        if batch and len(batch) + len(group) > MAX_MESSAGES:
            out.append((batch, n - 1))
            batch = []
        for i in range(0, len(group), MAX_MESSAGES):
            batch += group[i : i + MAX_MESSAGES]
            if len(batch) == MAX_MESSAGES and i + MAX_MESSAGES < len(group):
                out.append((batch, n - 1))
                batch = []
    if batch:
        out.append((batch, len(replies)))
    return out


def preformatted(text: str) -> list[Message]:
    """Reports (admin commands): LINE has no monospace, so plain text cut to the limit."""
    return [{"type": "text", "text": chunk} for chunk in split_text(text, MAX_TEXT)]


def batches(outgoing: list[Message]) -> list[list[Message]]:
    """At most 5 messages per reply/push call, in order."""
    return [outgoing[i : i + MAX_MESSAGES] for i in range(0, len(outgoing), MAX_MESSAGES)]
