"""Questions as data (questions.yaml): what kind of answer each expects, how typed text is read,
and how an understood value is shown back. The wording lives in locales/."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from dialogs import parsing
from dialogs.parsing import Parsed
from locales import t
from rules import Answers, yaml_data

KG = Decimal("0.001")  # tonnes
_FITS: dict[tuple, bool] = {}  # Question.fits_model, by (question, type, value)
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
FITS_KEPT = 4096  # then forgotten all at once
PARSERS = {
    "money": parsing.parse_money,
    "count": parsing.parse_count,
    "tonnes": parsing.parse_tonnes,
    "yes_no": parsing.parse_yes_no,
}


@dataclass(frozen=True)
class Question:
    id: str
    kind: str  # choice | yes_no | money | count | tonnes
    choices: dict[str, list[str]] = field(default_factory=dict)  # value -> synonyms
    max: int | None = None
    text_by: str | None = None  # answer field whose value picks the wording
    words: dict[str, list[str]] = field(default_factory=dict)  # yes/no: affirm, deny
    skippable: bool = True
    skip_also: tuple[str, ...] = ()

    def options(self, lang: str) -> list[tuple[str, str]]:
        """(value, label) in display order; yes/no questions offer yes / no."""
        if self.kind == "yes_no":
            return [
                ("true", t("dialog.buttons.affirm", lang)),
                ("false", t("dialog.buttons.deny", lang)),
            ]
        return [(v, t(f"choices.{self.id}.{v}", lang)) for v in self.choices]

    def parse(self, text: str, lang: str) -> Parsed:
        if self.kind == "choice":
            opts = [
                (v, [t(f"choices.{self.id}.{v}", lang), *syn]) for v, syn in self.choices.items()
            ]
            return parsing.parse_choice(text, opts)
        parsed = Parsed(False)
        if self.kind == "yes_no":  # its own labels and words first ("out of the prefecture")
            opts = [
                (v, [t(f"question.{self.id}.{role}", lang), *self.words.get(role, [])])
                for v, role in (("true", "affirm"), ("false", "deny"))
            ]
            own = parsing.parse_choice(text, opts)
            if own.ok and own.value in ("true", "false"):
                parsed = Parsed(True, own.value == "true")
        if not parsed.ok:
            parsed = PARSERS[self.kind](text)
        if parsed.ok and self.kind == "tonnes":  # the answer model keeps kilograms (0.001 t)
            parsed = replace(
                parsed,
                value=parsed.value.quantize(KG, ROUND_HALF_UP)
                if parsed.value.as_tuple().exponent < -3
                else parsed.value,
            )
        if parsed.ok and self.max is not None and parsed.value > self.max:
            return Parsed(False, error="too_large")
        if parsed.ok and not self.fits_model(parsed.value):
            return Parsed(False, error="invalid")
        return parsed

    def fits_model(self, value: Any) -> bool:
        """Whatever the parser understood, the answer model has the last word. Remembered
        for values of the plain types (each with its type: true is not 1) and Decimals (by
        their spelling: "64.10" may have more places than allowed where 64.1 has not)."""
        kind = type(value)
        if kind is Decimal:
            key: tuple | None = (self.id, kind, str(value))
        else:
            key = (self.id, kind, value) if kind in _PLAIN_TYPES else None
        fits = _FITS.get(key) if key is not None else None
        if fits is None:
            try:
                Answers.model_validate({self.id: value})
                fits = True
            except ValidationError:
                fits = False
            if key is not None:
                if len(_FITS) >= FITS_KEPT:
                    _FITS.clear()
                _FITS[key] = fits
        return fits

    def from_button(self, value: str) -> Any:
        """A button's value as the answer value, or None when it is not one of ours (figures
        come as buttons when a message held several and the user picks one)."""
        if self.kind == "yes_no":
            return {"true": True, "false": False}.get(value)
        if self.kind == "choice":
            return value if value in self.choices else None
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
            return None
        number = Decimal(value) if self.kind == "tonnes" else int(Decimal(value))
        fits = self.fits_model(number) and (self.max is None or number <= self.max)
        return number if fits and (self.kind == "tonnes" or "." not in value) else None

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
        tonnes = Decimal(str(value))  # an estimate keeps every digit: shown to the kilogram
        if tonnes.as_tuple().exponent < -3:
            tonnes = tonnes.quantize(KG, ROUND_HALF_UP)
        return t("units.tonnes", lang, n=format(tonnes.normalize(), "f"))


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
def _load() -> tuple[dict[str, Question], dict[str, list[str]], dict[str, list[str]]]:
    data = yaml_data.load((resources.files("dialogs") / "questions.yaml").read_text("utf-8"))
    qs = {
        qid: Question(
            id=qid,
            kind=q["kind"],
            choices=q.get("choices") or {},
            max=q.get("max"),
            text_by=q.get("text_by"),
            words=q.get("words") or {},
            skippable=q.get("skippable", True),
            skip_also=tuple(q.get("skip_also", ())),
        )
        for qid, q in data["questions"].items()
    }
    return qs, data["commands"], data["readback"]


def questions() -> dict[str, Question]:
    return _load()[0]


def command_words() -> dict[str, list[str]]:
    return _load()[1]


def readback_words() -> dict[str, list[str]]:
    """Whole replies that confirm (affirm) or reject (deny) a reading read back."""
    return _load()[2]
