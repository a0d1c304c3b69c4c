"""Reading typed answers: yen, head counts, tonnes of CO2, yes/no and choices.

Pure functions that never raise on user text. The words they recognise (units, estimate markers,
fillers, yes/no and "don't know" words, formal numerals) live in vocabulary.yaml, loaded once.

Numbers are read in three steps: known words are cut out of the normalised text (recording an
estimate, a unit or a minus sign), a leading topic ("capital is ...") is dropped, and exactly
one number must remain. Kanji and mixed integers (1200 or 123,000,000 written with kanji units)
are read by kanjize; a decimal times a unit (1.5 oku, 2.3 oku, 12.5) is read here with Decimal,
because kanjize goes through float (2.3 oku -> 229999999). Examples: tests/data/parsing_cases.yaml.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from decimal import Context, Decimal
from importlib import resources
from typing import Any, Literal

from rules import yaml_data

MAX_VALUE = 10**16  # larger figures are typos, not a company's capital or emissions
_MAX_TOKEN = 64  # longest number we read: keeps Decimal exact under _CTX and kanjize cheap
_CTX = Context(prec=100)  # enough digits that no arithmetic on a token ever rounds


class _Lazy:
    """A regular expression compiled on first use: compiling this module's patterns (long
    alternations, classes of kanji) took ~10 ms of every start, and the console's first
    question needs none of them. Once compiled, the pattern's own methods sit in the instance,
    so a call goes straight to them."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __getattr__(self, name: str) -> Any:  # only what the instance lacks: the first use
        if name == "source":
            raise AttributeError(name)
        compiled = re.compile(self.source)
        for method in ("search", "match", "fullmatch", "finditer", "findall", "sub", "split"):
            setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)


@dataclass(frozen=True)
class Parsed:
    ok: bool
    value: Any = None  # int for money/count, Decimal for tonnes, bool for yes/no, str for choice
    approx: bool = False  # the user marked an estimate
    unit: str | None = None  # the unit named, for readers given units (see measure_reader)
    error: Literal["invalid", "unknown", "negative", "too_large", "empty", None] = None


_INVALID = Parsed(False, error="invalid")
_UNKNOWN_ANSWER = Parsed(False, error="unknown")
_EMPTY = Parsed(False, error="empty")

_V = yaml_data.load(resources.files("dialogs").joinpath("vocabulary.yaml").read_text("utf-8"))
_TABLE = str.maketrans(
    {c: "-" for c in _V["normalize"]["dashes"]}
    | {c: "~" for c in _V["normalize"]["tildes"]}
    | {c: "'" for c in _V["normalize"]["quotes"]}
)
_THOUSANDS = re.compile(r"(?<=[0-9]),(?=[0-9]{3}(?![0-9]))")  # only real groups: 1,2345 stays
_LONE_SPACE = re.compile(r"(?<![0-9a-z]) | (?![0-9a-z])")  # a space not between two [0-9a-z]
_SCALES = _V["numerals"]["latin_scales"]
_LATIN_SCALE = re.compile(rf"(?<=[0-9]) ?({'|'.join(_SCALES)})(?![a-z])")  # 1.5 million


def normalize(text: str) -> str:
    """NFKC, casefold, dashes/tildes/quotes unified, thousands commas removed, spaces removed
    except one between two Latin words or numbers ("3 oku" keeps its space, "3 5" stays two)."""
    t = unicodedata.normalize("NFKC", text or "").casefold().translate(_TABLE)
    t = _LATIN_SCALE.sub(lambda m: _SCALES[m[1]], t)
    t = re.sub(r"\s+", " ", _THOUSANDS.sub("", t)).strip()
    return _LONE_SPACE.sub("", t)


def _words(items: Any) -> list[str]:
    return [w for w in (normalize(str(item)) for item in items) if w]


def _pattern(words: Any) -> _Lazy:
    """Alternation of words, longest first; Latin words only match as whole words."""
    parts = []
    for w in sorted(set(words), key=len, reverse=True):
        p = re.escape(w)
        if w[0].isascii() and w[0].isalpha():
            p = r"(?<![a-z])" + p
        if w[-1].isascii() and w[-1].isalpha():
            p += r"(?![a-z])"
        parts.append(p)
    return _Lazy("|".join(parts) or "(?!)")


_PUNCT = _V["punctuation"]
_NUM = _V["numerals"]
_DAIJI = str.maketrans(_NUM["daiji"])
_SMALL = {str(k): int(v) for k, v in _NUM["small_units"].items()}
_BIG = {str(k): int(v) for k, v in _NUM["big_units"].items()}
_KANJI_CHARS = _NUM["digits"] + "".join(_SMALL) + "".join(_BIG)
_NUMERAL = _Lazy(f"[0-9{re.escape(_KANJI_CHARS + ''.join(_NUM['daiji']))}]")
_DECIMAL = _Lazy(
    rf"(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
    rf"(?P<small>[{''.join(_SMALL)}])?(?P<big>[{''.join(_BIG)}])?"
)
_KANJI = _Lazy(f"[0-9{re.escape(_KANJI_CHARS)}]+")
_TOPIC = _pattern(_words(_V["topic"]))
_UNKNOWN_EXACT = set(_words(_V["unknown"]["exact"]))
_UNKNOWN = _pattern(_words(_V["unknown"]["contains"]))


def _kind(name: str) -> tuple[_Lazy, dict[str, str | int]]:
    """Removable words of one number kind -> role: "filler", "approx", "negative" or a unit's
    power of ten."""
    roles = _word_roles(_V[name].get("fillers", []))
    roles.update({normalize(str(w)): int(p) for w, p in _V[name]["units"].items()})
    return _pattern(roles), roles


def _word_roles(fillers: list[str]) -> dict:
    """The words every number may carry: fillers, estimate markers, minus signs."""
    roles: dict = dict.fromkeys(_words(_V["fillers"] + fillers), "filler")
    roles.update(dict.fromkeys(_words(_V["estimate"]), "approx"))
    roles.update(dict.fromkeys(_words(_V["negative"]), "negative"))
    return roles


_KINDS = {name: _kind(name) for name in ("money", "count", "tonnes")}
_Reader = tuple[_Lazy, dict]


def _yes_no(how: str) -> dict[str, bool]:
    """Yes/no words matched `how` ("exact" or "contains") -> the answer they give."""
    no = dict.fromkeys(_words(_V["yes_no"]["no"][how]), False)
    return dict.fromkeys(_words(_V["yes_no"]["yes"][how]), True) | no


_YES_NO_EXACT = _yes_no("exact")
_YES_NO_ROLES = _yes_no("contains")
_YES_NO = _pattern(_YES_NO_ROLES)
_CHOICE_NO = _Lazy(
    r"\(?([0-9]{1,3})\)?(?:"
    + "|".join(map(re.escape, _words(_V["choice"]["number_suffixes"])))
    + ")?"
)


def _is_unknown(t: str) -> bool:
    """The user does not know: a "don't know" word, or an answer of only question marks."""
    return set(t) == {"?"} or t.rstrip(_PUNCT) in _UNKNOWN_EXACT or bool(_UNKNOWN.search(t))


def _drop_topic(t: str) -> str:
    m = _TOPIC.search(t)
    return t[m.end() :] if m and not _NUMERAL.search(t[: m.start()]) else t


def _read_number(token: str) -> Decimal | None:
    """One number without sign or unit words, in Arabic, kanji, formal (daiji) or mixed
    numerals: 350,000,000 written as 3 oku 5000 man, 1.5 oku, 1200 in kanji, 12.5."""
    if len(token) > _MAX_TOKEN:
        return None
    token = token.translate(_DAIJI)
    if m := _DECIMAL.fullmatch(token):
        power = _SMALL.get(m["small"] or "", 0) + _BIG.get(m["big"] or "", 0)
        return Decimal(m["num"]).scaleb(power, _CTX)
    if _KANJI.fullmatch(token):
        from kanjize import kanji2number  # here: its import is ~2 ms of the start

        try:
            return Decimal(kanji2number(token))
        except ValueError:  # kanjize rejects malformed numerals (ten ten, man alone, 3 man 2 oku)
            return None
    return None


def measure_reader(units: dict[str, tuple[str, int]], fillers: list[str]) -> _Reader:
    """A reader for one kind of measure: unit word -> (unit, power of ten), e.g. "l" -> ("kl",
    -3); the unit named comes back in Parsed.unit."""
    roles = _word_roles(fillers)
    roles.update({normalize(str(w)): (u, int(p)) for w, (u, p) in units.items()})
    return _pattern(roles), roles


def parse_measure(text: str, reader: _Reader) -> Parsed:
    """A non-negative exact Decimal in the reader's units (converted), or an error."""
    return _quantity(text, reader)


def _quantity(text: str, kind: str | _Reader) -> Parsed:
    """A non-negative Decimal, capped at MAX_VALUE, with the unit's power of ten applied."""
    t = normalize(text)
    if not t:
        return _EMPTY
    if _is_unknown(t):
        return _UNKNOWN_ANSWER
    pattern, roles = _KINDS[kind] if isinstance(kind, str) else kind
    found: list = []
    t = pattern.sub(lambda m: found.append(roles[m.group()]) or " ", t)
    # a sentence-final "." is not a decimal point; two numbers left ("3 oku yen and 5 people")
    # make the answer invalid
    tokens = [tok for tok in (tok.rstrip(".") for tok in _drop_topic(t).split()) if tok]
    units = {role for role in found if isinstance(role, tuple)}
    powers = {role for role in found if isinstance(role, int)} | {p for _, p in units}
    if len(tokens) != 1 or len(powers) > 1 or len(units) > 1:
        return _INVALID
    value = _read_number(tokens[0])
    if value is None:
        return _INVALID
    value = value.scaleb(powers.pop() if powers else 0, _CTX)
    if value and "negative" in found:
        return Parsed(False, error="negative")
    if value > MAX_VALUE:
        return Parsed(False, error="too_large")
    unit = next(iter(units))[0] if units else None
    return Parsed(True, value, approx="approx" in found, unit=unit)


def _integral(p: Parsed) -> Parsed:
    if not p.ok:
        return p
    if p.value != p.value.to_integral_value():  # 1.5 people, 1.23456789 yen
        return _INVALID
    return replace(p, value=int(p.value))


def parse_money(text: str) -> Parsed:
    """Yen as int, e.g. 300000000 from 3 oku-en, 1.5 oku, kanji or daiji numerals, or
    ¥300,000,000; approx=True when marked as an estimate ("about")."""
    return _integral(_quantity(text, "money"))


_ZERO_PEOPLE = _words(_V["count"]["zero"])


def parse_count(text: str) -> Parsed:
    """People as int: Arabic or kanji numerals with a people counter; approx when estimated.
    Without any number, "nobody" words read as 0 (sole proprietors often have no staff)."""
    p = _integral(_quantity(text, "count"))
    t = normalize(text)
    if (
        p.error == "invalid"
        and not any(c.isdigit() for c in t)
        and any(w in t for w in _ZERO_PEOPLE)
    ):
        return Parsed(True, 0)
    return p


def parse_tonnes(text: str) -> Parsed:
    """Tonnes of CO2 as an exact Decimal (never via float): 12.5t, 12.5 t-CO2, 1,234.5;
    kilograms are converted: 500kg -> Decimal("0.5")."""
    p = _quantity(text, "tonnes")
    if not p.ok:
        return p
    value = p.value.normalize(_CTX)  # 12.50 -> 12.5, 0.500 (from kg) -> 0.5
    if value.as_tuple().exponent > 0:  # normalize() writes 100 as 1E+2
        value = value.quantize(Decimal(1), context=_CTX)
    return replace(p, value=value)


def parse_yes_no(text: str) -> Parsed:
    """True/False. A short word must be the whole answer ("y"); longer ones may appear
    anywhere, the longest match winning ("arimasen" is no, not the "ari" inside it). Both or
    neither: invalid ("1" is deliberately neither)."""
    t = normalize(text)
    if not t:
        return _EMPTY
    if _is_unknown(t):
        return _UNKNOWN_ANSWER
    bare = t.strip(_PUNCT)
    if bare in _YES_NO_EXACT:
        return Parsed(True, _YES_NO_EXACT[bare])
    answers = {_YES_NO_ROLES[m.group()] for m in _YES_NO.finditer(t)}
    return Parsed(True, answers.pop()) if len(answers) == 1 else _INVALID


def _key(text: str) -> str:
    return normalize(str(text)).replace(" ", "").strip(_PUNCT)


def parse_choice(text: str, options: list[tuple[str, list[str]]]) -> Parsed:
    """The value of one option: by its 1-based number, value, label or synonym (exact match
    first, then the longest label/synonym contained in the text; a tie between values is
    invalid). An exact match beats "unknown", so an option may be labelled "don't know"."""
    raw, t = normalize(text), _key(text)
    if not raw:
        return _EMPTY
    if m := _CHOICE_NO.fullmatch(t):
        index = int(m[1])
        return Parsed(True, options[index - 1][0]) if 1 <= index <= len(options) else _INVALID
    exact = {value for value, labels in options if t and t in {_key(w) for w in (value, *labels)}}
    if len(exact) == 1:
        return Parsed(True, exact.pop())
    if exact:
        return _INVALID
    if _is_unknown(raw):
        return _UNKNOWN_ANSWER
    best: dict[str, int] = {}  # value -> length of its longest label found in the text
    for value, labels in options:
        for k in filter(None, map(_key, labels)):
            if k in t:
                best[value] = max(best.get(value, 0), len(k))
    if not best:
        return _INVALID
    longest = max(best.values())
    winners = [value for value, n in best.items() if n == longest]
    return Parsed(True, winners[0]) if len(winners) == 1 else _INVALID
