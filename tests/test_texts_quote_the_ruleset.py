"""Every figure and clause a user reads comes from the ruleset in force, never typed into a text.

Each text of locales/ja.yaml and en.yaml is rendered against every file in rules/data/: its
placeholders that name a figure (rules.ruleset.figures) are filled from that file, the others
(an answer, a computed cut) with a mark that holds no digit. Then every number in the rendered
text must have come from the ruleset.

What counts as a number:
- a run of digits, ASCII or full-width, with its separators and any kanji numerals glued to it
  (10, 12.5, 300,000,000, 5千万, ３億, FY2025), except the 2 of CO2 (a name, not a figure);
- kanji numerals followed by a unit or counter (三億円, 五十人, 二か月), and English number
  words followed by one (two months, ten tonnes);
- circled numbers (別表①), which name rows of the 別表;
- so clause numbers (第4, 第2 2 (6), 第20条) are numbers too.
Not policy figures, and therefore allowed where they are typed:
- input examples: after 例: / 例えば / e.g. / for example, up to the closing bracket, 。 or line
  end (they show how to write an answer, and never state a limit);
- the few operational numbers listed in ALLOWED below, each with the reason.
"""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from locales import LABELLED, LANGS, catalog
from rules.ruleset import data_files, figures, load

ROOT = Path(__file__).resolve().parents[1]
FORMATTER = string.Formatter()
KANJI_DIGITS = "〇一二三四五六七八九十百千万億兆"
UNITS = "円|人|名|年|条|号|項|か月|ヶ月|カ月|%|％|トン|台|時間|日|回|倍|割"
NUMBER = re.compile(
    rf"(?<!CO)(?<![0-9０-９])[0-9０-９](?:[0-9０-９]|[,，.](?=[0-9０-９]))*[{KANJI_DIGITS}]*"
    rf"|[{KANJI_DIGITS}]+(?={UNITS})"
    r"|[①-⑳]"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|twenty|fifty|hundred|thousand"
    r"|million)\b(?=[- ](?:months?|years?|people|employees|persons|tonnes?|t\b|percent|kinds?))"
)
EXAMPLE = re.compile(r"(?:例[:：]|例えば|e\.g\.|for example)[^）)\n。]*")
HOLE = "‹›"  # stands for a value only known at run time: no digit in it

# key: {number: why it is not a policy figure}
ALLOWED = {
    "admin.web.tables.conversations.description": {
        "1": "one row per conversation",
        "9": "Japan is UTC+9: how to read the raw timestamps",
    },
    "admin.web.tables.events.description": {"1": "one row per message"},
    "telegram.cli.bad_secret": {"1": "Telegram's secret token length", "256": "the same"},
    "units.oku": {"100": "the meaning of 億 (100 million), spelt out in English"},
    "units.man": {"10,000": "the meaning of 万 (ten thousand), spelt out in English"},
    "admin.cli.bad_days": {"0": "an input bound: zero days or more"},
    "co2.working.lighting_before": {"1000": "watts to kilowatts: a unit conversion"},
    "co2.working.lighting_after": {"1000": "watts to kilowatts: a unit conversion"},
}


def render(template: str, figs: dict) -> tuple[str, list[bool]]:
    """The text, and for each character whether it was typed in the template (not filled in)."""
    text, typed = [], []
    for literal, name, spec, conv in FORMATTER.parse(template):
        text.append(literal)
        typed += [True] * len(literal)
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        value = format(FORMATTER.convert_field(figs[base], conv), spec) if base in figs else HOLE
        text.append(value)
        typed += [False] * len(value)
    return "".join(text), typed


def typed_numbers(key: str, template: str, figs: dict) -> list[str]:
    """Numbers with at least one digit typed in the template, outside examples and ALLOWED."""
    text, typed = render(template, figs)
    examples = [m.span() for m in EXAMPLE.finditer(text)]
    found = []
    for m in NUMBER.finditer(text):
        if not any(typed[m.start() : m.end()]):
            continue  # every digit came from the ruleset
        if any(a <= m.start() < b for a, b in examples):
            continue
        if m.group() in ALLOWED.get(key, {}):
            continue
        found.append(m.group())
    return found


def placeholders(template: str) -> set[str]:
    return {
        re.split(r"[.\[]", name, maxsplit=1)[0]
        for _, name, _, _ in FORMATTER.parse(template)
        if name is not None
    }


def code_params() -> set[str]:
    """Names the code passes to texts: keyword arguments, dict keys and params["..."] in
    bot/, dialogs/, rules/ and locales/, and the <name>_label that t() adds."""
    names = {f"{n}_label" for n in LABELLED}
    for file in [
        f for d in ("bot", "dialogs", "rules", "locales") for f in (ROOT / d).rglob("*.py")
    ]:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                names |= {k.arg for k in node.keywords if k.arg}
            elif isinstance(node, ast.Dict):
                names |= {
                    k.value
                    for k in node.keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                }
            elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                if isinstance(node.slice.value, str):
                    names.add(node.slice.value)
    return names


RULESETS = {f.stem: figures(load(f)) for f in data_files()}


@pytest.mark.parametrize("stem", RULESETS)
@pytest.mark.parametrize("lang", LANGS)
def test_no_text_types_a_figure_or_clause(lang, stem):
    figs = RULESETS[stem]
    problems = [
        f"{key}: {nums} — {text!r}"
        for key, text in catalog(lang).items()
        if (nums := typed_numbers(key, text, figs))
    ]
    assert not problems, (
        "numbers typed into texts (use a placeholder filled from rules/data, see "
        "rules.ruleset.figures):\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("stem", RULESETS)
def test_every_placeholder_is_a_figure_or_a_value_the_code_passes(stem):
    """A misspelt figure ({led_min_tt}) would otherwise only fail when a user hits the text."""
    figs, passed = RULESETS[stem], code_params()
    unknown = {
        f"{lang}: {key}: {name}"
        for lang in LANGS
        for key, text in catalog(lang).items()
        for name in placeholders(text)
        if name not in figs and name not in passed
    }
    assert not unknown, "\n".join(sorted(unknown))


def test_the_rule_is_sharp():
    """The detector itself: what it must catch and what it must leave alone."""
    figs = RULESETS[max(RULESETS)]
    caught = {
        "年間10トン以上": ["10"],
        "50%以上": ["50"],
        "３億円以下": ["３億"],
        "五千万円以下": ["五千万"],
        "900人以下": ["900"],
        "（第4 1）": ["第4"[1:], "1"],
        "別表①の基準": ["①"],
        "補助率1/3以内": ["1", "3"],
        "FY2025, then": ["2025"],
        "contracts of two months or less": ["two"],
    }
    for text, want in caught.items():
        assert typed_numbers("x", text, figs) == want, text
    clean = [
        "CO2削減量（t-CO2）",
        "一つ前の質問に戻ります",
        "例: 3億円、5,000万円",
        "（e.g. 12.5 t, 500 kg）",
        "年間{led_min_t}トン以上（{clause_led}）",
        "{employees:,}人",
    ]
    for text in clean:
        assert typed_numbers("x", text, figs) == [], text


def test_allowed_numbers_are_still_there():
    """An allowance whose text no longer holds the number goes, so the list cannot go stale."""
    stale = [
        f"{key}: {number}"
        for key, numbers in ALLOWED.items()
        for number in numbers
        if not any(number in NUMBER.findall(catalog(lang).get(key, "")) for lang in LANGS)
    ]
    assert not stale, stale
