"""What a typed answer says about the question awaited: one `Reading` per message.

The dialog (engine.py) consumes this; button presses never come here. The contract:

- outcome "value": `value` answers the question (int yen/people, Decimal tonnes, bool, choice
  value). `sure=False` asks the dialog to read it back before recording it: a contradiction
  ("はい、ありません"), a double negation, a hedge with a yes/no or a choice ("たぶん県内です"),
  a choice named only by a weak word ("工場" for manufacturing), two clauses that disagree.
  `approx` marks an estimate the owner made ("約80名", "たぶん80名": with numbers a hedge is an
  estimate, not a doubt about what was said).
- "ask_back": the owner asks about the question ("青色申告って何？"): give its help.
- "hedge": only fillers or hesitation ("うーん"), no answer: re-ask gently.
- "unknown": the owner does not know: guidance.
- "ambiguous": several readings remain; `candidates` are the values to offer as buttons (two
  head counts give the first and the total, with a `note` on 常時使用する従業員).
- "bound": a bound, not a figure ("500人を超えています"): `bound` = (op, number).
- "invalid", "empty", "negative", "too_large": not understood; re-ask with the reason.

`also` lists other questions the message clearly answers, ((field, value), ...), never a guess
and never a field already in `answers`. `note` is (locale key, params) explaining the reading
(which 別表 row an industry word falls in and why, which prefecture a place is in).

How: the text is normalised, rewritten for dialect (understanding.yaml), and cut into morphemes
(analyser.py). Words of the question (its proposition for yes/no, its options for choices) are
found in the surface and dictionary forms; each is negated by an odd number of negations in
its own clause (up to a comma, a conjunction, or a word of another option), so
"暴力団員に当たる者はいません" is "no" and "リースではなく購入" is a purchase. Numbers are cut out
of sentences and each is read by the question's own parser (parsing.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from dialogs import analyser, parsing
from dialogs.analyser import Token
from dialogs.questions import Question, questions
from locales import t

Outcome = Literal[
    "value",
    "ask_back",
    "hedge",
    "unknown",
    "ambiguous",
    "bound",
    "invalid",
    "empty",
    "negative",
    "too_large",
]


@dataclass(frozen=True)
class Reading:
    outcome: Outcome
    value: Any = None
    approx: bool = False
    sure: bool = True
    candidates: tuple = ()
    bound: tuple | None = None
    also: tuple = ()
    note: tuple | None = None


def _yaml(name: str) -> Any:
    return yaml.safe_load(resources.files("dialogs").joinpath(name).read_text("utf-8"))


def norm(text: str) -> str:
    """NFKC and casefold; spaces dropped except between two Latin words or numbers. Unlike
    parsing.normalize the long vowel mark stays, so the analyser sees ボイラー as a word."""
    s = unicodedata.normalize("NFKC", text or "").casefold()
    return parsing._LONE_SPACE.sub("", re.sub(r"\s+", " ", s).strip())


@cache
def _data() -> dict:
    d = _yaml("understanding.yaml")
    d["rewrite"] = {norm(k): v for k, v in d["rewrite"].items()}
    d["ask_back"] = [re.compile(p) for p in d["ask_back"]]
    return d


@cache
def _industries() -> dict[str, tuple[str, str]]:
    """Everyday industry word -> (別表 row value, JSIC 中分類)."""
    d = _yaml("industries.yaml")
    return {norm(w): (e["row"], e["jsic"]) for e in d["entries"] for w in e["words"]}


@cache
def _places() -> dict[str, str | None]:
    """Place name -> None for Tochigi, else its prefecture."""
    d = _yaml("places.yaml")
    out: dict[str, str | None] = {norm(w): pref for pref, ws in d["outside"].items() for w in ws}
    return out | dict.fromkeys(map(norm, d["tochigi"]))


# --- the text and its morphemes ------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    raw: str  # normalised and rewritten
    toks: tuple[Token, ...]

    def has(self, words) -> bool:
        return any(norm(w) in self.raw for w in words)


def _prepare(text: str) -> Text:
    s = norm(text)
    for a, b in _data()["rewrite"].items():
        s = s.replace(a, b)
    return Text(s, analyser.tokens(s) if s else ())


def _is_negator(tok: Token) -> bool:
    return (
        (tok.norm in ("無い", "ない", "ず", "ぬ") and tok.pos in ("形容詞", "助動詞"))
        or tok.surface in ("なし", "無し", "以外")
        or tok.base == "違う"
    )


def _is_boundary(tok: Token) -> bool:
    return (tok.pos == "補助記号" and tok.surface not in ("~", "-")) or (
        tok.pos2 == "接続助詞" and tok.surface in ("が", "けど", "けれど", "けれども", "ので", "し")
    )


@dataclass(frozen=True)
class Mention:
    group: str  # option value, or key / anti / generic for a yes/no proposition
    word: str
    first: int  # token span, inclusive
    last: int
    weak: bool = False


def _find(text: Text, words: dict[str, tuple[str, bool]]) -> list[Mention]:
    """Mentions of `words` (word -> (group, weak)) in the surface or the dictionary forms; where
    two overlap the longer word is the one meant (整備工場, not 工場)."""
    toks = text.toks
    if not toks:
        return []
    strings = [(text.raw, [(tok.start, tok.end, i) for i, tok in enumerate(toks)])]
    for form in ("base", "norm"):  # 当たりません -> 当たる; ついて -> 付く
        joined, spans = "", []
        for i, tok in enumerate(toks):
            spans.append((len(joined), len(joined) + len(getattr(tok, form)), i))
            joined += getattr(tok, form)
        strings.append((joined, spans))
    found = []
    for word, (group, weak) in words.items():
        if not word:
            continue
        latin = word.isascii()
        for string, index in strings:
            for m in re.finditer(re.escape(word), string):
                if latin and (
                    (
                        m.start() > 0
                        and string[m.start() - 1].isascii()
                        and string[m.start() - 1].isalnum()
                    )
                    or (
                        m.end() < len(string)
                        and string[m.end()].isascii()
                        and string[m.end()].isalnum()
                    )
                ):
                    continue
                covered = [i for s, e, i in index if e > m.start() and s < m.end()]
                if covered:
                    found.append(Mention(group, word, covered[0], covered[-1], weak))
    kept: list[Mention] = []
    for m in sorted(found, key=lambda m: (-len(m.word), m.first)):
        if all(m.last < k.first or m.first > k.last for k in kept) and m not in kept:
            kept.append(m)
    return sorted(kept, key=lambda m: m.first)


def _latin_at(s: str, i: int) -> bool:
    return 0 <= i < len(s) and s[i].isascii() and s[i].isalnum()


def _negations(text: Text, m: Mention, stops: set[int]) -> int:
    """Negations in the mention's clause: after it, up to a boundary or a word that starts
    another reading (エアコンではなく工業炉: the negation stops before 工業炉)."""
    n = 0
    for j in range(m.last + 1, len(text.toks)):
        if j in stops or _is_boundary(text.toks[j]):
            break
        n += _is_negator(text.toks[j])
    return n


# --- the kinds of question --------------------------------------------------------------------
def _yes_no(q: Question, text: Text, strict: bool) -> Reading:
    prop = _data()["propositions"][q.id]
    words = {norm(w): (g, False) for g in ("generic", "anti", "key") for w in prop.get(g, [])}
    note = None
    if q.id == "site_in_tochigi":
        for w, pref in _places().items():
            words.setdefault(w, ("anti" if pref else "key", False))
    mentions = _find(text, words)
    content = [m for m in mentions if m.group != "generic"]
    used = content or ([] if strict else [m for m in mentions if m.group == "generic"])
    votes, doubled = [], False
    for m in used:
        other = {"key": "anti", "anti": "key"}.get(m.group)
        stops = {j for o in used if o.group == other and o.first > m.last for j in (o.first,)}
        n = _negations(text, m, stops)
        doubled |= n >= 2
        holds = n % 2 == 0
        votes.append((m.first, holds if m.group != "anti" else not holds))
    if q.id == "site_in_tochigi":
        places = [m for m in content if m.word in _places()]
        if places:
            pref = _places()[places[-1].word]
            key = "reading.place_outside" if pref else "reading.place_inside"
            note = (key, {"place": places[-1].word, "prefecture": pref or ""})
    if strict:
        values = {v for _, v in votes}
        if len(values) == 1 and not doubled and not _hedged(text):
            return Reading("value", values.pop())
        return Reading("invalid")
    if not votes and any(
        _is_negator(tok) and (tok.pos in ("形容詞", "名詞", "動詞")) for tok in text.toks
    ):
        votes.append((len(text.toks), False))  # "ないです", "なし", "違います": a plain no
    said = _interjection(text)
    if not votes and said is None:
        return Reading("invalid")
    if not votes:
        return Reading("value", said, sure=not _hedged(text))
    values = {v for _, v in votes}
    value = max(votes)[1]  # two clauses that disagree: the last one, read back
    sure = len(values) == 1 and not doubled and not _hedged(text) and said in (None, value)
    return Reading("value", value, sure=sure, note=note)


def _interjection(text: Text) -> bool | None:
    """A yes or no word opening the message (はい, いいえ)."""
    words = _data()["interjections"]
    for tok in text.toks:
        if tok.pos == "補助記号":
            continue
        if tok.surface in words["yes"]:
            return True
        if tok.surface in words["no"]:
            return False
        return None
    return None


def _hedged(text: Text) -> bool:
    return text.has(_data()["hedges"]) or text.raw.endswith("?")


def _options(q: Question, lang: str) -> dict[str, tuple[str, bool]]:
    """Word -> (option, weak) for a choice question: its label and synonyms, the reader's extra
    words (options the question does not offer yet included, so they are not mistaken for
    another), and for the industry the JSIC file."""
    extra = _data()["choices"].get(q.id, {})
    weak = {norm(w) for ws in extra.get("weak", {}).values() for w in ws}
    words: dict[str, tuple[str, bool]] = {}
    if q.id == "industry":
        weak |= {norm(w) for w in _yaml("industries.yaml")["weak"]}
        words |= {w: (row, w in weak) for w, (row, _) in _industries().items()}
    for v, ws in extra.get("words", {}).items():
        words |= {norm(w): (v, norm(w) in weak) for w in ws}
    for v, ws in extra.get("weak", {}).items():
        words |= {norm(w): (v, True) for w in ws}
    for v, syn in q.choices.items():
        for w in (v, t(f"choices.{q.id}.{v}", lang), *syn):
            words.setdefault(norm(w), (v, norm(w) in weak))
    return words


def _choice(q: Question, text: Text, lang: str, strict: bool) -> Reading:
    mentions = _find(text, _options(q, lang))
    positive: dict[str, list[Mention]] = {}
    negated = set()
    for m in mentions:
        stops = {o.first for o in mentions if o.group != m.group and o.first > m.last}
        if _negations(text, m, stops) % 2:
            negated.add(m.group)
        else:
            positive.setdefault(m.group, []).append(m)
    strong = [v for v, ms in positive.items() if any(not m.weak for m in ms)]
    fits = _data()["choices"].get(q.id, {}).get("compatible", {})
    rivals = [v for v in positive if v not in strong and not set(strong) <= set(fits.get(v, []))]
    chosen = strong + rivals if strong else list(positive)
    order = list(q.choices)
    if not chosen:
        rest = [v for v in order if v not in negated]
        if negated and rest and not strict:
            return Reading("ambiguous", candidates=tuple(rest))
        return Reading("invalid")
    offered = [v for v in order if v in chosen]
    if len(chosen) > 1:
        return Reading(
            "ambiguous" if len(offered) > 1 and not strict else "invalid", candidates=tuple(offered)
        )
    value = chosen[0]
    if value not in q.choices:  # an option this question does not offer (yet)
        return Reading("invalid")
    weak_only = not strong
    if strict and (weak_only or _hedged(text)):
        return Reading("invalid")
    note = None
    if q.id == "industry":
        word = next((m.word for m in positive[value] if m.word in _industries()), None)
        if word:
            note = ("reading.industry_note", _industry_params(word, value, lang))
    return Reading("value", value, sure=not (weak_only or _hedged(text)), note=note)


def _industry_params(word: str, value: str, lang: str) -> dict:
    from rules.ruleset import all_rulesets

    row = all_rulesets()[-1].size_limits.rows[value].row
    label = t(f"choices.industry.{value}", lang)
    return {"word": word, "label": label, "row": row, "jsic": _industries()[word][1]}


# --- numbers inside sentences -----------------------------------------------------------------
@cache
def _figure_pattern(kind: str) -> re.Pattern[str]:
    """A number followed by one of the kind's units (parsing's vocabulary), then maybe a bound."""
    _, roles = parsing._KINDS[kind]
    units = sorted((w for w, r in roles.items() if isinstance(r, int)), key=len, reverse=True)
    digits = "0-9." + re.escape(parsing._KANJI_CHARS + "".join(parsing._NUM["daiji"]))
    unit = "|".join(map(re.escape, units))
    big = re.escape("".join(parsing._BIG))
    need = rf"(?:{unit})" if kind != "money" else rf"(?:(?<=[{big}])(?:{unit})?|(?:{unit}))"
    return re.compile(rf"(?<![{digits}a-z])([{digits}]+){need}")


def _figures(q: Question, s: str) -> list[tuple[int, int, Any, str | None]]:
    """(start, end, value, bound op) for each figure of the question's kind in `s`."""
    out = []
    bounds = _data()["bounds"]
    for m in _figure_pattern(q.kind).finditer(s):
        parsed = q.parse(m.group(), "ja")
        if not parsed.ok:
            continue
        after = s[m.end() :]
        op = next((op for op, ws in bounds.items() for w in ws if after.startswith(w)), None)
        out.append((m.start(), m.end(), parsed.value, op))
    return out


def _clause(s: str, start: int, end: int) -> str:
    left = max(s.rfind(c, 0, start) for c in "、。,")
    rights = [i for i in (s.find(c, end) for c in "、。,") if i >= 0]
    return s[left + 1 : min(rights, default=len(s))]


def _quantity(q: Question, text: Text, strict: bool) -> Reading:
    d = _data()
    if not strict:
        parsed = q.parse(text.raw, "ja")
        if parsed.ok:
            return Reading("value", parsed.value, approx=parsed.approx)
        if parsed.error in ("negative", "too_large"):
            return Reading(parsed.error)
        if q.kind == "count" and text.has(d["nobody"]):
            return Reading("value", 0)
    s = parsing.normalize(text.raw)
    topics = d["topics"]
    others = [o for o in topics if o != q.id and questions()[o].kind == q.kind]
    figures = []
    for f in _figures(q, s):
        clause = _clause(s, f[0], f[1])
        theirs = any(norm(w) in clause for o in others for w in topics[o])
        mine = any(norm(w) in clause for w in topics.get(q.id, []))
        if strict and not mine:
            continue
        if mine or not theirs:
            figures.append(f)
    if not figures:
        return Reading("invalid")
    approx = any(r == "approx" for w, r in parsing._KINDS[q.kind][1].items() if w in s) or (
        text.has(d["hedges"])
    )
    if len(figures) == 1:
        _, _, value, op = figures[0]
        if op:
            return Reading("bound", bound=(op, value)) if not strict else Reading("invalid")
        return Reading("value", value, approx=approx)
    if strict:
        return Reading("invalid")
    values = tuple(v for _, _, v, _ in figures)
    between = s[figures[0][1] : figures[1][0]]
    if any(w in between for w in d["alternatives"]) or q.kind != "count":
        return Reading("ambiguous", candidates=values)
    return Reading(
        "ambiguous", candidates=(values[0], sum(values)), note=("reading.two_counts", {})
    )


# --- the entry point ---------------------------------------------------------------------------
def _read(q: Question, text: Text, lang: str, strict: bool = False) -> Reading:
    if q.kind == "yes_no":
        return _yes_no(q, text, strict)
    if q.kind == "choice":
        return _choice(q, text, lang, strict)
    return _quantity(q, text, strict)


_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


def understand(qid: str, text: str, answers: Mapping[str, Any], lang: str) -> Reading:
    """Read `text` typed in answer to question `qid`, given the answers so far."""
    q = questions()[qid]
    if not norm(text):
        return Reading("empty")
    if not _JAPANESE.search(text):  # Latin letters and digits: the plain parser (English, 3000)
        parsed = q.parse(text, lang)
        if parsed.ok:
            return Reading("value", parsed.value, approx=parsed.approx)
        return Reading(parsed.error or "invalid")
    d = _data()
    prepared = _prepare(text)
    s = prepared.raw
    if any(p.search(s) for p in d["ask_back"]):
        return Reading("ask_back")
    if parsing._is_unknown(parsing.normalize(s)) or prepared.has(d["unknown"]):
        return Reading("unknown")
    rest = s
    for w in sorted(map(norm, d["fillers"] + d["hedges"]), key=len, reverse=True):
        rest = rest.replace(w, "")
    if not rest.strip(parsing._PUNCT + "~-ー ねよ"):
        return Reading("hedge")
    reading = _read(q, prepared, lang)
    also = []
    for other in d["also"].get(qid, []):
        if other in answers:
            continue
        r = _read(questions()[other], prepared, lang, strict=True)
        if r.outcome == "value" and r.sure:
            also.append((other, r.value))
    if also:
        reading = Reading(**{**reading.__dict__, "also": tuple(also)})
    return reading
