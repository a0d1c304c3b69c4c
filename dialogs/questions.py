"""Questions as data (questions.yaml): what kind of answer each expects, how typed text is read,
and how an understood value is shown back. The wording lives in locales/."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

import yaml

from dialogs import parsing
from dialogs.parsing import Parsed
from locales import t

PARSERS = {"money": parsing.parse_money, "count": parsing.parse_count,
           "tonnes": parsing.parse_tonnes, "yes_no": parsing.parse_yes_no}


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # choice | yes_no | money | count | tonnes
    choices: dict[str, list[str]] = field(default_factory=dict)  # value -> synonyms
    max: int | None = None
    text_by: str | None = None  # answer field whose value picks the wording

    def options(self, lang: str) -> list[tuple[str, str]]:
        """(value, label) in display order; yes/no questions offer yes / no."""
        if self.kind == "yes_no":
            return [("true", t("dialog.buttons.affirm", lang)),
                    ("false", t("dialog.buttons.deny", lang))]
        return [(v, t(f"choices.{self.id}.{v}", lang)) for v in self.choices]

    def parse(self, text: str, lang: str) -> Parsed:
        if self.kind == "choice":
            opts = [(v, [t(f"choices.{self.id}.{v}", lang), *syn]) for v, syn in
                    self.choices.items()]
            return parsing.parse_choice(text, opts)
        parsed = PARSERS[self.kind](text)
        if parsed.ok and self.max is not None and parsed.value > self.max:
            return Parsed(False, error="too_large")
        return parsed

    def from_button(self, value: str) -> Any:
        """A button's value as the answer value, or None when it is not one of ours."""
        if self.kind == "yes_no":
            return {"true": True, "false": False}.get(value)
        return value if value in self.choices else None

    def text(self, answers: dict, lang: str) -> str:
        key = f"question.{self.id}.text"
        if self.text_by:
            key += f".{answers.get(self.text_by, 'led')}"
        return t(key, lang)

    def show(self, value: Any, lang: str) -> str:
        """An answer value as the user reads it back (echo and summary)."""
        if self.kind == "choice":
            return t(f"choices.{self.id}.{value}", lang)
        if self.kind == "yes_no":
            return t(f"question.{self.id}.{'affirm' if value else 'deny'}", lang)
        if self.kind == "money":
            return format_yen(int(value), lang)
        if self.kind == "count":
            return t("units.count", lang, n=int(value))
        return t("units.tonnes", lang, n=format(Decimal(str(value)).normalize(), "f"))


def format_yen(n: int, lang: str) -> str:
    """The exact figure and the way people say it (in Japanese: with oku and man units)."""
    if n < 10**4:
        return t("units.yen_small", lang, exact=n)
    words = []
    rest = n
    for unit, size in (("oku", 10**8), ("man", 10**4)):
        if rest >= size:
            words.append(t(f"units.{unit}", lang, n=rest // size))
            rest %= size
    if rest or not words:
        words.append(str(rest))
    return t("units.yen", lang, exact=n, spoken="".join(words))


@cache
def _load() -> tuple[dict[str, Question], dict[str, list[str]]]:
    data = yaml.safe_load((resources.files("dialogs") / "questions.yaml").read_text("utf-8"))
    qs = {qid: Question(id=qid, kind=q["kind"], choices=q.get("choices") or {},
                        max=q.get("max"), text_by=q.get("text_by"))
          for qid, q in data["questions"].items()}
    return qs, data["commands"]


def questions() -> dict[str, Question]:
    return _load()[0]


def command_words() -> dict[str, list[str]]:
    return _load()[1]
