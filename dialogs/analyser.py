"""Japanese morphological analysis of typed answers (SudachiPy with SudachiDict-core).

The dictionary is memory-mapped on the first typed answer, once per process (about 0.05 s),
so the console shows its first question before it is needed and button presses never load it.
Mode C keeps compounds whole ("blue return", "organised crime group", "business site" are
one word each), which is how owners name things."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Token:
    surface: str
    base: str  # dictionary form of an inflected word
    norm: str  # normalised form: spelling variants unified (kana or kanji)
    pos: str  # part of speech (the dictionary's Japanese names, see understanding.yaml)
    pos2: str  # its subdivision
    form: str  # conjugation form of an inflected word, e.g. the conditional
    start: int  # character offsets in the analysed text
    end: int


@cache
def _tokenizer():
    from sudachipy import Dictionary, SplitMode  # imported late: only typed answers need it

    return Dictionary(dict="core").tokenizer(mode=SplitMode.C)


def tokens(text: str) -> tuple[Token, ...]:
    """The morphemes of `text` (already normalised by the caller), in order."""
    out = []
    for m in _tokenizer().tokenize(text):
        pos = m.part_of_speech()
        out.append(
            Token(
                m.surface(),
                m.dictionary_form(),
                m.normalized_form(),
                pos[0],
                pos[1],
                pos[5],
                m.begin(),
                m.end(),
            )
        )
    return tuple(out)
