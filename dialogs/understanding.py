"""What a typed answer says about the question awaited: one `Reading` per message.

The dialog (engine.py) consumes this; button presses never come here. The contract:

- outcome "value": `value` answers the question (int yen/people, Decimal tonnes, bool, choice
  value). `sure=False` asks the dialog to read it back before recording it: a contradiction
  ("yes, there are none"), a double negation, a hedge with a yes/no or a choice ("probably in
  the prefecture"), a choice named only by a weak word ("factory" for manufacturing), two
  clauses that disagree. `approx` marks an estimate the owner made ("about 80", "maybe 80":
  with numbers a hedge is an estimate, not a doubt about what was said).
- "ask_back": the owner asks about the question ("what is a blue return?"): give its help.
- "hedge": only fillers or hesitation ("hmm"), no answer: re-ask gently.
- "unknown": the owner does not know: guidance.
- "ambiguous": several readings remain; `candidates` are the values to offer as buttons (two
  head counts give the first and the total, with a `note` on who counts as a regular employee).
- "bound": a bound, not a figure ("over 500 people"): `bound` = (op, number).
- "invalid", "empty", "negative", "too_large": not understood; re-ask with the reason.

`also` lists other questions the message clearly answers, ((field, value), ...), never a guess
and never a field already in `answers`. `note` is (locale key, params) explaining the reading
(which row of the size table an industry word falls in and why, which prefecture a place is in).

How: the text is normalised, rewritten for dialect (understanding.yaml), and cut into morphemes
(analyser.py). Words of the question (its proposition for yes/no, its options for choices) are
found in the surface and dictionary forms; each is negated by an odd number of negations in
its own clause (up to a comma, a conjunction, or a word of another option), so "there is no one
who is a gang member" is "no" and "not a lease but a purchase" is a purchase. Numbers are cut
out of sentences and each is read by the question's own parser (parsing.py). The words and the
grammar's morphemes are data (understanding.yaml); examples: tests/data/understanding/.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

from dialogs import analyser, parsing
from dialogs.analyser import Token
from dialogs.questions import Question, questions
from locales import LANGS, t
from rules import yaml_data

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
    return yaml_data.load(resources.files("dialogs").joinpath(name).read_text("utf-8"))


def norm(text: str) -> str:
    """NFKC and casefold; spaces dropped except between two Latin words or numbers. Unlike
    parsing.normalize the long vowel mark stays, so the analyser sees katakana words whole."""
    s = unicodedata.normalize("NFKC", text or "").casefold()
    return parsing._LONE_SPACE.sub("", _SPACES.sub(" ", s).strip())


_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=8192)
def _word(word: str) -> str:
    """norm() of a word of the vocabulary (data: few words, looked for in every message)."""
    return norm(word)


@cache
def _data() -> dict:
    d = _yaml("understanding.yaml")
    d["rewrite"] = {norm(k): v for k, v in d["rewrite"].items()}
    d["ask_back"] = [re.compile(p) for p in d["ask_back"]]
    d["correction"] = re.compile(d["correction"])
    return d


@cache
def _industries() -> dict[str, tuple[str, str]]:
    """Everyday industry word -> (size table row value, JSIC middle division)."""
    d = _yaml("industries.yaml")
    return {norm(w): (e["row"], e["jsic"]) for e in d["entries"] for w in e["words"]}


@cache
def _places() -> dict[str, str | None]:
    """Place name -> None for Tochigi, else its prefecture."""
    d = _yaml("places.yaml")
    out: dict[str, str | None] = {norm(w): pref for pref, ws in d["outside"].items() for w in ws}
    return out | dict.fromkeys(norm(w) for ws in d["tochigi"].values() for w in ws)


# --- the text and its morphemes ------------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    raw: str  # normalised and rewritten
    toks: tuple[Token, ...]

    def has(self, words) -> bool:
        return any(_word(w) in self.raw for w in words)


def _prepare(text: str) -> Text:
    s = norm(text)
    for a, b in _data()["rewrite"].items():
        s = s.replace(a, b)
    taken_back = list(_data()["correction"].finditer(s))
    if taken_back and s[taken_back[-1].end() :].strip():  # only the corrected answer counts
        s = s[taken_back[-1].end() :]
    return Text(s, _rejoined(analyser.tokens(s)) if s else ())


def _rejoined(toks: tuple[analyser.Token, ...]) -> tuple[analyser.Token, ...]:
    """Conjunctions the analyser splits in two, joined again (see grammar.split_conjunctions)."""
    g, out, i = _grammar(), [], 0
    pairs = _split_conjunctions()
    while i < len(toks):
        word = pairs.get(tuple(t.surface for t in toks[i : i + 2]))
        after = toks[i + 2].surface if i + 2 < len(toks) else None
        if word and after not in g["not_split_before"]:
            a, b = toks[i], toks[i + 1]
            out.append(
                analyser.Token(word, word, word, a.pos, g["conjunction_pos"], "*", a.start, b.end)
            )
            i += 2
            continue
        out.append(toks[i])
        i += 1
    return tuple(out)


@cache
def _split_conjunctions() -> dict[tuple[str, ...], str]:
    return {tuple(parts): word for word, parts in _grammar()["split_conjunctions"].items()}


def _grammar() -> dict:
    return _data()["grammar"]


def _is_negator(tok: Token) -> bool:
    neg = _grammar()["negators"]
    return (
        (tok.norm in neg["norm"] and tok.pos in neg["pos"])
        or tok.surface in neg["surface"]
        or tok.base in neg["base"]
    )


def _is_punctuation(tok: Token) -> bool:
    g = _grammar()
    return tok.pos == g["punctuation_pos"] and tok.surface not in g["not_punctuation"]


def _is_boundary(tok: Token) -> bool:
    g = _grammar()
    return _is_punctuation(tok) or (
        tok.pos2 == g["conjunction_pos"] and tok.surface in g["conjunctions"]
    )


@dataclass(frozen=True)
class Mention:
    group: str  # option value, or key / anti / generic for a yes/no proposition
    word: str
    first: int  # token span, inclusive
    last: int
    weak: bool = False


@dataclass(frozen=True)
class Lexicon:
    """The words of one question, word -> (group, weak), and an index finding them all: first
    character -> (the lengths of its words, longest first; those words)."""

    words: dict[str, tuple[str, bool]]
    index: dict[str, tuple[tuple[int, ...], frozenset[str]]]

    def starts(self, string: str) -> list[tuple[int, str]]:
        """(position, word) for each position where a word begins: the longest one there
        (what a regular expression `(?=(longest|...|shortest))` finds, several times faster
        on the hundreds of words of the industry question)."""
        out, index, n = [], self.index, len(string)
        for start, char in enumerate(string):
            entry = index.get(char)
            if entry is None:
                continue
            lengths, words = entry
            for length in lengths:
                if length <= n - start and string[start : start + length] in words:
                    out.append((start, string[start : start + length]))
                    break
        return out


def _lexicon(words: dict[str, tuple[str, bool]]) -> Lexicon:
    words = {w: g for w, g in words.items() if w}
    by_first: dict[str, set[str]] = {}
    for w in words:
        by_first.setdefault(w[0], set()).add(w)
    index = {
        c: (tuple(sorted({len(w) for w in ws}, reverse=True)), frozenset(ws))
        for c, ws in by_first.items()
    }
    return Lexicon(words, index)


def _find(text: Text, lexicon: Lexicon) -> list[Mention]:
    """Mentions of the lexicon's words in the surface or the dictionary forms; where two
    overlap the longer word is the one meant ("car repair factory", not "factory")."""
    toks = text.toks
    if not toks:
        return []
    strings = [(text.raw, [(tok.start, tok.end, i) for i, tok in enumerate(toks)])]
    for form in ("base", "norm"):  # inflected verbs by their dictionary and normalised forms
        joined, spans = "", []
        for i, tok in enumerate(toks):
            spans.append((len(joined), len(joined) + len(getattr(tok, form)), i))
            joined += getattr(tok, form)
        strings.append((joined, spans))
    found = []
    for string, index in strings:
        for start, word in lexicon.starts(string):
            end = start + len(word)
            if word.isascii() and (_latin_at(string, start - 1) or _latin_at(string, end)):
                continue  # "it" inside "suite" is not a word
            covered = [i for s, e, i in index if e > start and s < end]
            if covered:
                group, weak = lexicon.words[word]
                found.append(Mention(group, word, covered[0], covered[-1], weak))
    kept: list[Mention] = []
    for m in sorted(found, key=lambda m: (-len(m.word), m.first)):
        if all(m.last < k.first or m.first > k.last for k in kept) and m not in kept:
            kept.append(m)
    return sorted(kept, key=lambda m: m.first)


def _overlaps(m: Mention, taken: frozenset) -> bool:
    """Part of a longer word the question awaited was answered with: another question may not
    read it again (a farmers' cooperative names a cooperative, not the farming industry)."""
    return any(m.first <= t.last and t.first <= m.last and len(m.word) < len(t.word) for t in taken)


def _words_of(q: Question, text: Text, lang: str) -> frozenset:
    if q.kind == "yes_no":
        return frozenset(_find(text, _proposition(q.id)))
    if q.kind == "choice":
        return frozenset(_find(text, _options(q.id, lang)))
    return frozenset()


def _latin_at(s: str, i: int) -> bool:
    return 0 <= i < len(s) and s[i].isascii() and s[i].isalnum()


def _scope(text: Text, m: Mention, stops: set[int]) -> tuple[int, bool | str]:
    """(negations, asked) in the mention's clause: after it, up to a boundary or a word that
    starts another reading ("not air conditioning but a furnace": the negation stops before
    the furnace). A clause closed by a question mark only repeats the question ("arrears? no,
    no"), and one that supposes ("if there were ...", "even if ...") answers nothing."""
    n, toks = 0, text.toks
    for j in range(m.last + 1, len(toks)):
        tok = toks[j]
        after_topic = toks[j - 1].surface in _grammar()["topic_particles"]
        if j in stops or (_is_boundary(tok) and not (after_topic and tok.surface == "、")):
            return n, tok.surface == "?"  # a comma right after a topic does not end it
        if _is_conditional(tok, toks[j + 1] if j + 1 < len(toks) else None):
            return n, "if"  # "if there were arrears, ...": a supposition, not an answer
        n += _is_negator(tok) + (tok.surface in _grammar()["only"])
    return n, False


def _is_conditional(tok: Token, following: Token | None) -> bool:
    g = _grammar()
    concessive = (
        following is not None
        and tok.pos2 == g["conjunction_pos"]
        and tok.surface + following.surface in g["concessive"]
    )
    return tok.form.startswith(g["conditional_form"]) or concessive


# --- the kinds of question --------------------------------------------------------------------
def _yes_no(q: Question, text: Text, strict: bool, taken: frozenset = frozenset()) -> Reading:
    note = None
    mentions = [m for m in _find(text, _proposition(q.id)) if not _overlaps(m, taken)]
    scopes = {}
    for m in mentions:
        other = {"key": "anti", "anti": "key"}.get(m.group)
        stops = {o.first for o in mentions if o.group == other and o.first > m.last}
        scopes[m] = _scope(text, m, stops)
    if any(scopes[m][1] == "if" for m in mentions):
        return Reading("invalid")  # "even with arrears, is it fine": a supposition, ask again
    mentions = [m for m in mentions if not scopes[m][1]]  # the question repeated back
    content = [m for m in mentions if m.group != "generic" and not (strict and m.weak)]
    generic = [m for m in mentions if m.group == "generic" and not _distracted(text, q.id, m)]
    used = content or ([] if strict else generic)
    votes, doubled = [], False
    for m in used:
        n = scopes[m][0]
        doubled |= n >= 2
        holds = n % 2 == 0
        if m.group == "generic" and holds and _other_nouns(text):
            continue  # "there are officers": something else exists, not what is asked
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
    toks = text.toks  # a repeated negator is one ("no no")
    negators = [
        x
        for i, x in enumerate(toks)
        if _is_negator(x) and (i == 0 or toks[i - 1].surface != x.surface)
    ]
    plain_no = any(t.pos in _grammar()["plain_no_pos"] for t in negators)
    if not votes and len(negators) % 2 and plain_no:
        votes.append((len(text.toks), False))  # "none", "that's wrong" (not "not wrong")
    said = _interjection(text)
    if not votes and said is None:
        return Reading("invalid")
    if not votes:
        return Reading("value", said, sure=not _hedged(text))
    values = {v for _, v in votes}
    if len(values) > 1 and text.has(_data()["partial"]):
        return Reading("invalid")  # "partly replacing, partly new": neither yes nor no
    value = max(votes)[1]  # two clauses that disagree: the last one, read back
    vague = any(m.weak for m in used)  # "fine": no trouble, read back
    sure = len(values) == 1 and not (doubled or vague or _hedged(text)) and said in (None, value)
    return Reading("value", value, sure=sure, note=note)


@cache
def _proposition(qid: str) -> Lexicon:
    prop = _data()["propositions"][qid]
    words = {norm(w): ("anti", True) for w in prop.get("vague_anti", [])}
    words |= {norm(w): ("key", True) for w in prop.get("vague_key", [])}
    words |= {norm(w): (g, False) for g in ("generic", "anti", "key") for w in prop.get(g, [])}
    if qid == "site_in_tochigi":
        for w, pref in _places().items():
            words.setdefault(w, ("anti" if pref else "key", False))
    return _lexicon(words)


def _distracted(text: Text, qid: str, m: Mention) -> bool:
    """A bare verb's clause names something else: a distractor of the question (a tax return
    of no colour) or another question's words ("no ties to gangs" typed for tax arrears)."""
    toks = text.toks
    first, last = m.first, m.last
    while first > 0 and not _is_boundary(toks[first - 1]):
        first -= 1
    while last + 1 < len(toks) and not _is_boundary(toks[last + 1]):
        last += 1
    clause = text.raw[toks[first].start : toks[last].end]
    props = _data()["propositions"]
    own = sorted((_word(w) for g in ("key", "anti") for w in props[qid][g]), key=len, reverse=True)
    for w in own:
        clause = clause.replace(w, "")
    others = [w for o, p in props.items() if o != qid for w in p["names"]]
    return any(_word(w) in clause for w in props[qid].get("distractors", []) + others)


def _other_nouns(text: Text) -> bool:
    """Nouns of its own in a message that names none of the question's words."""
    plain = _data()["plain_nouns"]
    return any(
        tok.pos == _grammar()["noun_pos"]
        and tok.pos2 in _grammar()["noun_kinds"]
        and tok.surface not in plain
        for tok in text.toks
    )


def _interjection(text: Text) -> bool | None:
    """A yes or no word opening the message."""
    words = _data()["interjections"]
    for tok in text.toks:
        if _is_punctuation(tok):
            continue
        if tok.surface in words["yes"]:
            return True
        if tok.surface in words["no"]:
            return False
        return None
    return None


def _hedged(text: Text) -> bool:
    return text.has(_data()["hedges"]) or text.raw.endswith("?")


@cache
def _options(qid: str, lang: str) -> Lexicon:
    """Word -> (option, weak) for a choice question: its label and synonyms, the reader's extra
    words (options the question does not offer yet included, so they are not mistaken for
    another), and for the industry the JSIC file."""
    q = questions()[qid]
    extra = _data()["choices"].get(q.id, {})
    weak = {norm(w) for ws in extra.get("weak", {}).values() for w in ws}
    words: dict[str, tuple[str, bool]] = {}
    if q.id == "industry":
        weak |= {norm(w) for w in _yaml("industries.yaml")["weak"]}  # once: _options is cached
        words |= {w: (row, w in weak) for w, (row, _) in _industries().items()}
    for v, ws in extra.get("words", {}).items():
        words |= {norm(w): (v, norm(w) in weak) for w in ws}
    for v, ws in extra.get("weak", {}).items():
        words |= {norm(w): (v, True) for w in ws}
    words |= {norm(w): ("|".join(vs), False) for w, vs in extra.get("either", {}).items()}
    for v, syn in q.choices.items():
        for w in (v, t(f"choices.{q.id}.{v}", lang), *syn):
            words.setdefault(norm(w), (v, norm(w) in weak))
    return _lexicon(words)


def _named_as_main(text: Text, m: Mention) -> bool:
    before = text.raw[: text.toks[m.first].start].rstrip(_grammar()["before_main"])
    return before.endswith(tuple(_data()["main_markers"]))


def _choice(
    q: Question, text: Text, lang: str, strict: bool, taken: frozenset = frozenset()
) -> Reading:
    mentions = [m for m in _find(text, _options(q.id, lang)) if not _overlaps(m, taken)]
    positive: dict[str, list[Mention]] = {}
    negated = set()
    coordinated = {  # "A や B ではない": A's clause goes on through B
        o.first
        for m in mentions
        for o in mentions
        if m.last + 1 < o.first <= m.last + 3  # とか comes as と + か
        and "".join(t.surface for t in text.toks[m.last + 1 : o.first])
        in _grammar()["coordinators"]
    }
    if text.has(_data()["undecided"]):  # "購入かリースかまだ決めていません"
        named = [v for v in q.choices if any(v in m.group.split("|") for m in mentions)]
        if len(named) > 1 and not strict:
            return Reading("ambiguous", candidates=tuple(named))
        return Reading("invalid" if strict or named else "unknown")
    for m in mentions:
        stops = {
            o.first
            for o in mentions
            if o.group != m.group and o.first > m.last and o.first not in coordinated
        }
        n, _ = _scope(text, m, stops)
        for group in m.group.split("|"):  # a word may leave two options open
            if n % 2:
                negated.add(group)
            else:
                positive.setdefault(group, []).append(m)
    positive.pop("_", None)  # words that name no option
    main = [v for v, ms in positive.items() if any(_named_as_main(text, m) for m in ms)]
    if len(main) == 1:  # the main business named decides (the guideline's 2 2: main business)
        positive = {main[0]: positive[main[0]]}
    strong = [v for v, ms in positive.items() if any(not m.weak for m in ms)]
    extra = _data()["choices"].get(q.id, {})
    named = list(positive)
    for general, kinds in extra.get("general", {}).items():  # making rubber hoses: rubber
        if general in named and set(named) - {general} and set(named) - {general} <= set(kinds):
            named.remove(general)
    strong = [v for v in strong if v in named]
    fits = extra.get("compatible", {})  # "renewing the lights": a weak word of no rival
    rivals = [v for v in named if v not in strong and not set(strong) <= set(fits.get(v, []))]
    chosen = strong + rivals if strong else named
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
    d = _data()
    bounds = d["bounds"]
    for m in _figure_pattern(q.kind).finditer(s):
        parsed = q.parse(m.group(), "ja")
        if not parsed.ok:
            continue
        after = re.split(r"[、。,]", s[m.end() :], maxsplit=1)[0][: d["bound_reach"]]
        op = next((op for op, ws in bounds.items() for w in ws if w in after), None)
        out.append((m.start(), m.end(), parsed.value, op))
    return out


def _topic(s: str, start: int, qid: str) -> bool:
    """The figure at `start` is introduced by one of the question's words ("employees: 20",
    "after: 12 t"; a particle or a colon between them at most)."""
    before = s[:start].rstrip(_grammar()["before_figure"])
    return any(before.endswith(_word(w)) for w in _data()["topics"].get(qid, []))


def _quantity(q: Question, text: Text, strict: bool) -> Reading:
    d = _data()
    # the plain parser takes "reduction" for a filler: a reduction is no emission figure
    reduction = q.kind == "tonnes" and re.search(d["reduction_named"], text.raw)
    s = parsing.normalize(text.raw)
    figures = _figures(q, s)
    bounded = any(op for *_, op in figures)  # "20トン弱": the plain parser drops the bound word
    if not strict and not reduction and not bounded:
        parsed = q.parse(text.raw, "ja")
        if parsed.ok:
            return Reading("value", parsed.value, approx=parsed.approx)
        if parsed.error in ("negative", "too_large"):
            return Reading(parsed.error)
        if q.kind == "count" and text.has(d["nobody"]):
            return Reading("value", 0)
    if len(figures) == 2 and q.id in ("co2_before_t", "co2_after_t"):
        between = s[figures[0][1] : figures[1][0]]
        if between in d["transitions"] or between[:-1] in d["transitions"]:  # "from 20 t to 12 t"
            return Reading("value", figures[q.id == "co2_after_t"][2])
    others = [o for o in d["topics"] if o not in questions() or questions()[o].kind == q.kind]
    if q.kind == "tonnes":
        figures = [f for f in figures if not s[f[1] :].startswith(tuple(d["reductions"]))]
    figures = [f for f in figures if not any(_topic(s, f[0], o) for o in others if o != q.id)]
    if strict:  # another question's figure only when named as such
        figures = [f for f in figures if _topic(s, f[0], q.id)]
    if not figures:
        return Reading("invalid")
    first = figures[0][0]
    if re.search(r"[0-9]\s*(?:" + "|".join(map(re.escape, d["ranges"])) + r")\s*$", s[:first]):
        return Reading("invalid")  # a range ("15-20 people"): which figure is meant?
    approx = any(r == "approx" for w, r in parsing._KINDS[q.kind][1].items() if w in s) or (
        text.has(d["hedges"] + d["approx"])
    )
    if q.kind != "count":  # the same amount said twice is one (two groups of 10 are 20 people)
        seen: set = set()
        figures = [f for f in figures if not (f[2:] in seen or seen.add(f[2:]))]
    exact = [f for f in figures if not f[3]]
    if len(figures) > 1 and not exact:
        return Reading("invalid")  # "over 10 million and under 100 million": ask for the figure
    hedged = len(exact) == 1 < len(figures)  # "over 300, regularly 250": the figure, read back
    if hedged:
        figures = exact
    if len(figures) == 1:
        _, _, value, op = figures[0]
        if op:
            return Reading("bound", bound=(op, value)) if not strict else Reading("invalid")
        family = q.kind == "count" and text.has(d["family"])  # the owner's family: read back
        return Reading("value", value, approx=approx, sure=not (hedged or family))
    if strict:
        return Reading("invalid")
    marked = [  # "8 with me, 7 without me": that one, read back
        f
        for i, f in enumerate(figures)
        if any(_word(w) in s[figures[i - 1][1] if i else 0 : f[0]] for w in d["preferred"])
    ]
    if len(marked) == 1:
        return Reading("value", marked[0][2], approx=approx, sure=False)
    values = tuple(v for _, _, v, _ in figures)
    between = s[figures[0][1] : figures[1][0]]
    if between.strip() in d["ranges"] or q.kind != "count" or text.has(d["subset"]):
        return Reading("ambiguous", candidates=values)  # "10 or 20"; "50, of whom 30 ..."
    # two head counts ("30 full-time and 20 part-time"): the first alone, or all of them
    note = ("reading.two_counts", {})
    return Reading("ambiguous", candidates=(values[0], sum(values)), note=note)


# --- the entry point ---------------------------------------------------------------------------
def _read(
    q: Question, text: Text, lang: str, strict: bool = False, taken: frozenset = frozenset()
) -> Reading:
    if q.kind == "yes_no":
        return _yes_no(q, text, strict, taken)
    if q.kind == "choice":
        return _choice(q, text, lang, strict, taken)
    return _quantity(q, text, strict)


@cache
def _japanese() -> re.Pattern[str]:
    """Kana and kanji. Compiled on first use: its table of characters takes ms to build."""
    return re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


@cache
def _fillers() -> tuple[str, ...]:
    """Fillers and hedges, normalised, the longest first (what a message of nothing else is)."""
    d = _data()
    return tuple(sorted(map(norm, d["fillers"] + d["hedges"]), key=len, reverse=True))


READINGS_KEPT = 4096  # readings remembered (least recently used forgotten first)
LONGEST_KEPT = 256  # characters: a longer message is read each time (it seldom comes again)


def understand(qid: str, text: str, answers: Mapping[str, Any], lang: str) -> Reading:
    """Read `text` typed in answer to question `qid`, given the answers so far. A pure reading
    of (question, text, language, which of the other questions it may also answer are still
    open): remembered, since owners type the same short answers again and again."""
    answered = tuple(f for f in _data()["also"].get(qid, ()) if f in answers)
    if lang not in LANGS or len(text or "") > LONGEST_KEPT:
        return _understand(qid, text, answered, lang)
    reading = _remembered(qid, text, answered, lang)
    if reading.note is not None and isinstance(reading.note[1], dict):  # the caller's own dict
        reading = replace(reading, note=(reading.note[0], dict(reading.note[1])))
    return reading


@lru_cache(maxsize=READINGS_KEPT)
def _remembered(qid: str, text: str, answered: tuple[str, ...], lang: str) -> Reading:
    return _understand(qid, text, answered, lang)


def _understand(qid: str, text: str, answers: tuple[str, ...], lang: str) -> Reading:
    q = questions()[qid]
    if not norm(text):
        return Reading("empty")
    d = _data()
    prepared = _prepare(text)
    if not _japanese().search(text):  # Latin letters and digits: English, "3000", "GHP", "2"
        reading = _read(q, prepared, lang) if q.kind == "choice" else Reading("invalid")
        if reading.outcome == "value" and re.search(d["english_negation"], prepared.raw):
            return Reading("invalid")  # "we don't lease": which option is left is not said
        if reading.outcome != "invalid":
            return reading
        parsed = q.parse(text, lang)
        if parsed.ok:
            return Reading("value", parsed.value, approx=parsed.approx)
        return Reading(parsed.error or "invalid")
    s = prepared.raw
    if any(p.search(s) for p in d["ask_back"]):
        return Reading("ask_back")
    if parsing._is_unknown(parsing.normalize(s)) or prepared.has(d["unknown"]):
        return Reading("unknown")
    rest = s
    for w in _fillers():
        rest = rest.replace(w, "")
    if not rest.strip(parsing._PUNCT + _grammar()["trailing"]):
        return Reading("hedge")
    reading = _read(q, prepared, lang)
    if reading.outcome != "value":
        return reading
    also, taken = [], _words_of(q, prepared, lang)
    for other in d["also"].get(qid, []):
        if other in answers or prepared.has(d["not_also"]):
            continue
        apart = other in d["apart"].get(qid, [])  # their words may not share ours
        r = _read(questions()[other], prepared, lang, True, taken if apart else frozenset())
        if r.outcome == "value" and r.sure:
            also.append((other, r.value))
    if also:
        reading = Reading(**{**reading.__dict__, "also": tuple(also)})
    return reading
