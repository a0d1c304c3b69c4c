"""The catalogues in locales/: ja.yaml (default) and en.yaml must hold the same keys with the same
placeholders, every key the code asks for must exist in both, every template must render, and
the English one must read as English.

Keys the code uses are found two ways: string literals in dialogs/, bot/ and rules/ that look
like keys (f-strings become patterns), and keys built from data, by running the code that builds
them (the rules engine over the YAML cases, the questions in dialogs/questions.yaml, the admin
report's codes and columns, the admin web view's metadata, short dialogs in each language).
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import re
import string
import typing
from decimal import Decimal
from enum import Enum
from pathlib import Path

import pytest
import yaml

import locales
from dialogs import engine as dialog_engine
from dialogs import questions as dialog_questions
from dialogs import render as dialog_render
from dialogs.io import State, UserInput
from dialogs.questions import format_yen, questions
from dialogs.render import verdict_json
from locales import LABELLED, LANGS, _flatten
from rules import Answers, evaluate
from rules.model import CriterionStatus, Status

ROOT = Path(__file__).resolve().parents[1]
CODE_DIRS = ("dialogs", "bot", "rules")
CASES_DIR = ROOT / "tests" / "rules_cases"
DEFAULT_DATE = dt.date(2024, 6, 1)
FORMATTER = string.Formatter()

# Where a language may format a placeholder differently (the name stays the same everywhere).
# units.yen: English prints the comma-grouped figure only; precision ".0" prints nothing of the
# oku/man reading, which only Japanese needs (see the comment in en.yaml).
SPEC_DIFFERENCES = {("units.yen", "spoken")}

CJK = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f々〆]")
LATIN = re.compile(r"[A-Za-z]")
# Japanese punctuation that means a sentence was left untranslated.
JA_PUNCTUATION = re.compile(r"[「」『』。、（）：？！]")
KEY_LITERAL = re.compile(r"[a-z_]+(?:\.[a-z0-9_]+)+")


def load(lang: str) -> dict:
    return yaml.safe_load((ROOT / "locales" / f"{lang}.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cats() -> dict[str, dict[str, str]]:
    return {lang: _flatten(load(lang)) for lang in LANGS}


def fields(template: str) -> set[tuple[str, str, str | None]]:
    """(name, format spec, conversion) of every replacement field; literal {{ }} are not fields."""
    return {
        (name, spec or "", conv)
        for _, name, spec, conv in FORMATTER.parse(template)
        if name is not None
    }


def names(template: str) -> set[str]:
    return {re.split(r"[.\[]", name, maxsplit=1)[0] for name, _, _ in fields(template)}


def dummy_params(template: str) -> dict:
    """An int for fields formatted as numbers ("{n:,}"), a string for the rest."""
    params = {}
    for name, spec, _ in fields(template):
        base = re.split(r"[.\[]", name, maxsplit=1)[0]
        numeric = "," in spec or spec.endswith("d")
        params[base] = 1234567 if numeric else "x"
    return params


# --- (a), (b): the two catalogues agree ------------------------------------------------------


def walk(tree: dict, path: str = ""):
    for key, value in tree.items():
        yield f"{path}{key}", key, value
        if isinstance(value, dict):
            yield from walk(value, f"{path}{key}.")


@pytest.mark.parametrize("lang", LANGS)
def test_yaml_is_a_tree_of_strings(lang):
    """No YAML surprises: keys are strings (a bare yes/no/on/off key would be a bool) and every
    leaf is a non-empty string (an unquoted 123, yes or a missing value would not be)."""
    problems = []
    for path, key, value in walk(load(lang)):
        if not isinstance(key, str):
            problems.append(f"{path}: key {key!r} is a {type(key).__name__}")
        if not isinstance(value, dict) and not (isinstance(value, str) and value.strip()):
            problems.append(f"{path}: value {value!r} is not a non-empty string")
    assert not problems, "\n".join(problems)


def test_same_keys(cats):
    ja, en = set(cats["ja"]), set(cats["en"])
    assert not ja - en, f"missing in en.yaml: {sorted(ja - en)}"
    assert not en - ja, f"not in ja.yaml: {sorted(en - ja)}"


def test_same_structure():
    """Same nesting too: a key that is a leaf in one file is not a section in the other."""
    ja = {p: isinstance(v, dict) for p, _, v in walk(load("ja"))}
    en = {p: isinstance(v, dict) for p, _, v in walk(load("en"))}
    assert {p: d for p, d in ja.items() if p in en} == {p: d for p, d in en.items() if p in ja}


def test_same_placeholders(cats):
    problems = []
    for key in sorted(set(cats["ja"]) & set(cats["en"])):
        ja, en = cats["ja"][key], cats["en"][key]
        if names(ja) != names(en):
            problems.append(f"{key}: ja {sorted(names(ja))} != en {sorted(names(en))}")
            continue
        exact_ja = {f for f in fields(ja) if (key, f[0]) not in SPEC_DIFFERENCES}
        exact_en = {f for f in fields(en) if (key, f[0]) not in SPEC_DIFFERENCES}
        if exact_ja != exact_en:
            problems.append(
                f"{key}: ja {sorted(exact_ja, key=str)} != en {sorted(exact_en, key=str)}"
            )
    assert not problems, "\n".join(problems)


def test_spec_differences_are_real(cats):
    """The allowance above is used, so it cannot go stale unnoticed."""
    for key, name in SPEC_DIFFERENCES:
        specs = {lang: {s for n, s, _ in fields(cats[lang][key]) if n == name} for lang in LANGS}
        assert specs["ja"] != specs["en"], f"{key}: {name} is formatted alike; drop the allowance"


# --- (d): every template renders ------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_template_renders(cats, lang):
    problems = []
    for key, template in cats[lang].items():
        try:
            template.format(**dummy_params(template))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            problems.append(f"{key}: {type(exc).__name__}: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_money_counts_and_tonnes_render(lang):
    for n in (0, 1, 9999, 10**4, 12345, 5 * 10**7, 3 * 10**8, 350001234, 10**12, 10**13):
        text = format_yen(n, lang)
        assert f"{n:,}" in text
    for q in questions().values():
        if q.kind == "count":
            assert "1,234" in q.show(1234, lang)
        if q.kind == "tonnes":
            assert "12.5" in q.show(Decimal("12.50"), lang)


def test_english_money_reads_as_a_figure():
    assert format_yen(300_000_000, "en") == "¥300,000,000"
    assert format_yen(5_000, "en") == "¥5,000"
    assert format_yen(300_000_000, "ja") == "300,000,000円（3億円）"


# --- (e): English is English ----------------------------------------------------------------


def test_english_values_are_english(cats):
    """Japanese may appear only as glosses (official names, clause numbers): each value must
    have more Latin letters than kana/kanji, and no Japanese sentence punctuation."""
    problems = []
    for key, value in cats["en"].items():
        cjk, latin = len(CJK.findall(value)), len(LATIN.findall(value))
        if cjk and cjk >= latin:
            problems.append(f"{key}: {cjk} kana/kanji vs {latin} Latin letters: {value!r}")
        if found := JA_PUNCTUATION.findall(value):
            problems.append(f"{key}: Japanese punctuation {found}: {value!r}")
    assert not problems, "\n".join(problems)


def test_yes_no_questions_spell_out_yes_and_no(cats):
    """Where the Japanese question says what はい and いいえ mean, the English one does too."""
    problems = []
    for q in questions().values():
        if q.kind != "yes_no":
            continue
        for key in [k for k in cats["ja"] if k.startswith(f"question.{q.id}.text")]:
            if "はい＝" in cats["ja"][key] and not re.search(
                r"\(yes = .+, no = .+\)", cats["en"].get(key, "")
            ):
                problems.append(key)
    assert not problems, f"no '(yes = ..., no = ...)' in en: {problems}"


# --- (c): every key the code uses exists ----------------------------------------------------


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).glob("*.py"))


def key_literals(sections: set[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(where, key) for plain literals and (where, regex) for f-strings shaped like keys."""
    plain, patterns = [], []
    for path in code_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        inside_fstrings = {
            id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
        }
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in inside_fstrings
                and KEY_LITERAL.fullmatch(node.value)
                and node.value.split(".")[0] in sections
            ):
                plain.append((where, node.value))
            elif isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if not (
                    isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and re.match(r"[a-z_]+\.", first.value)
                    and first.value.split(".")[0] in sections
                ):
                    continue
                regex = "".join(
                    re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9_]+"
                    for v in node.values
                )
                patterns.append((where, regex))
    return plain, patterns


def test_code_literals_are_keys(cats):
    sections = set(load("ja"))
    plain, patterns = key_literals(sections)
    assert len(plain) > 30 and len(patterns) > 15, "the scan no longer finds the keys"
    problems = [
        f"{where}: {key}" for where, key in plain for lang in LANGS if key not in cats[lang]
    ]
    for where, regex in patterns:
        for lang in LANGS:
            if not any(re.fullmatch(regex, k) or re.match(regex + r"\.", k) for k in cats[lang]):
                problems.append(f"{where}: no {lang} key matches {regex}")
    assert not problems, "\n".join(problems)


def test_question_keys(cats):
    problems = []
    for qid, q in questions().items():
        parts = ["short", "why", "unknown"]
        if q.kind == "yes_no":
            parts += ["affirm", "deny"]
        if q.text_by is None:
            parts.append("text")
        else:  # one wording per value of the answer it depends on, where the question is asked
            hub = Answers.model_fields[q.text_by].annotation
            enum = next(a for a in typing.get_args(hub) if isinstance(a, type))
            asked = [v.value for v in enum if qid in evaluate(Answers(**{q.text_by: v})).missing]
            assert asked, f"{qid}: never asked?"
            parts += [f"text.{v}" for v in asked]
        keys = [f"question.{qid}.{part}" for part in parts]
        keys += [f"choices.{qid}.{value}" for value in q.choices]
        keys.append(f"dialog.reask.{q.kind}")  # what is said when an answer cannot be read
        problems += [f"{lang}: {key}" for key in keys for lang in LANGS if key not in cats[lang]]
    problems += [
        f"{lang}: dialog.reask.{e}"
        for e in ("negative", "too_large")
        for lang in LANGS
        if f"dialog.reask.{e}" not in cats[lang]
    ]
    assert not problems, "\n".join(problems)


def test_labelled_codes_have_labels(cats):
    """t() adds <name>_label for every coded parameter: every code of the answer model has one."""
    problems = []
    for name in LABELLED:
        enum = next(
            a
            for a in typing.get_args(Answers.model_fields[name].annotation)
            if isinstance(a, type) and issubclass(a, Enum)
        )
        problems += [
            f"{lang}: choices.{name}.{v.value}"
            for v in enum
            for lang in LANGS
            if f"choices.{name}.{v.value}" not in cats[lang]
        ]
    assert not problems, "\n".join(problems)


def test_verdict_keys(cats):
    keys = [f"verdict.{part}.{s}" for s in typing.get_args(Status) for part in ("title", "next")]
    keys += [f"admin.criterion.{s}" for s in typing.get_args(CriterionStatus)]
    assert not [(lang, k) for k in keys for lang in LANGS if k not in cats[lang]]


# The rules engine's message keys and warnings, with real parameters: every case in
# tests/rules_cases, plus a grid of answers meant to reach every reason.


def _case_answers(raw: dict) -> dict:
    return {
        k: Decimal(str(v)) if isinstance(v, float) else v
        for k, v in (raw or {}).items()
        if v is not None
    }


def _case_date(value) -> dt.date:
    if value is None:
        return DEFAULT_DATE
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def rule_inputs() -> list[tuple[dict, dt.date]]:
    inputs = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")).get("cases", []):
            inputs.append((_case_answers(case.get("answers")), _case_date(case.get("date"))))
    rest = {"tax_arrears": False, "antisocial_forces": False, "site_in_tochigi": True}
    for kind, industry, capital, employees, blue in itertools.product(
        ["company", "sole_proprietor", "general_association", "medical_corporation", "other", None],
        ["manufacturing", "retail", "rubber_products", None],
        [None, 10_000_000, 10**10],
        [None, 20, 5000],
        [None, True, False],
    ):
        answers = {
            "entity_type": kind,
            "industry": industry,
            "capital_yen": capital,
            "employees": employees,
            "blue_return": blue,
        }
        inputs.append(({k: v for k, v in answers.items() if v is not None} | rest, DEFAULT_DATE))
    for project, equipment, replaces, delivery, co2 in itertools.product(
        ["led", "equipment_replacement", "cogeneration", "other", None],
        ["boiler", "other", None],
        [True, False, None],
        ["purchase", "lease", None],
        [(None, None), ("30", "12"), ("30", "25"), ("0", "0"), ("100", "85"), ("30", None)],
    ):
        answers = {
            "project_type": project,
            "equipment": equipment,
            "replaces_existing": replaces,
            "delivery": delivery,
            "co2_before_t": co2[0],
            "co2_after_t": co2[1],
        }
        inputs.append(({k: v for k, v in answers.items() if v is not None}, DEFAULT_DATE))
    for flag, value in itertools.product(rest, (True, False)):
        inputs.append(({flag: value}, DEFAULT_DATE))
    for on in (dt.date(2020, 1, 1), dt.date(2030, 1, 1)):
        inputs.append(({}, on))
    return inputs


@pytest.fixture(scope="module")
def verdicts():
    return [evaluate(Answers.model_validate(a), on) for a, on in rule_inputs()]


def test_rules_keys_exist_and_render(cats, verdicts):
    problems, seen = set(), set()
    for verdict in verdicts:
        used = [r.message_key for r in verdict.reasons] + [w["key"] for w in verdict.warnings]
        seen.update(used)
        problems.update(f"{lang}: {k}" for k in used for lang in LANGS if k not in cats[lang])
        if not problems:
            for lang in LANGS:
                verdict_json(verdict, lang)  # every message, with the engine's own parameters
    assert not problems, "\n".join(sorted(problems))
    # The grid above should reach every reason and warning the catalogue has.
    unreached = {k for k in cats["ja"] if k.startswith(("reason.", "warning."))} - seen
    assert not unreached, (
        f"never produced by the rules (dead, or the grid misses them): {sorted(unreached)}"
    )


def test_admin_codes_and_columns(cats):
    report = pytest.importorskip("bot.admin.report")
    web = pytest.importorskip("bot.admin.web")
    keys = [f"admin.{kind}.{code}" for kind, codes in report.CODES.items() for code in codes]
    columns = {
        c
        for module in (report, web)
        for name in dir(module)
        if name.endswith("_COLUMNS")
        for c in getattr(module, name)
    }
    assert columns, "no *_COLUMNS lists found"
    keys += [f"admin.col.{c}" for c in columns]
    keys += [f"admin.show.mark.{o}" for o in report.CODES["outcome"] + ("asks",)]
    problems = [f"{lang}: {k}" for k in keys for lang in LANGS if k not in cats[lang]]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", LANGS)
def test_admin_column_headings_are_distinct(cats, lang):
    """They become SQL column aliases in the web view: two alike would collide."""
    headings = [v for k, v in cats[lang].items() if k.startswith("admin.col.")]
    assert len(headings) == len(set(headings)), sorted(h for h in headings if headings.count(h) > 1)


class Recorder:
    """Stands in for locales.t in the modules under test: records each key, then renders it
    from exactly the catalogue asked for (no fallback to Japanese)."""

    def __init__(self):
        self.keys: list[tuple[str, str]] = []

    def __call__(self, key, lang=None, **params):
        lang = lang if lang in LANGS else locales.default_lang()
        self.keys.append((lang, key))
        if key not in locales.catalog(lang):
            raise KeyError(f"missing {lang} locale key {key!r}")
        return locales.t(key, lang, **params)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    for module in (dialog_engine, dialog_questions, dialog_render):
        monkeypatch.setattr(module, "t", rec)
    return rec


@pytest.mark.parametrize("lang", LANGS)
def test_admin_web_metadata_renders(monkeypatch, tmp_path, lang):
    report = pytest.importorskip("bot.admin.report")
    web = pytest.importorskip("bot.admin.web")
    rec = Recorder()
    monkeypatch.setattr(report, "t", rec)
    monkeypatch.setattr(web, "t", rec)
    web.metadata("subsidy", lang)
    web.write_templates(tmp_path, lang)
    for kind in report.CODES:
        report.labels(kind, lang)
    assert len(rec.keys) > 40


# Parallel conversations, one per line, typed in Japanese and in English, through the real
# engine with the real parser: the same steps must give the same replies (by key) in both
# languages, and every reply must render from its own catalogue.
DIALOGS = {
    "ja": [
        [
            "/start",
            "/back",
            "1",
            "1",
            "3億円",
            "いいえ",
            "いいえ",
            "はい",
            "1",
            "はい",
            "1",
            "たくさん",
            "30トン",
            "12トン",
            "/why",
            "こんにちは",
        ],
        [
            "/start",
            "2",
            "わからない",
            "/skip",
            "なぜ",
            "たくさん",
            "1",
            "たくさん",
            "-5",
            "99999999人",
            "約300人",
            "戻る",
            "回答確認",
            "ヘルプ",
            "/start",
            "続ける",
            "/edit nothing",
            "最初から",
            "やめる",
            "/start",
        ],
        [
            "/start",
            "9",
            "回答確認",
            "/edit entity_type",
            "1",
            "1",
            "約2億9千万円",
            "いいえ",
            "いいえ",
            "はい",
            "2",
            "5",
            "戻る",
            "1",
            "いいえ",
        ],
        ["/start", "1", "4", "2億円", "はい", "50人", "はい"],
        ["/start", "1", "6", "1億円", "いいえ", "いいえ", "はい", "3", "2"],
        [
            "/start",
            "1",
            "1",
            "3億円",
            "いいえ",
            "いいえ",
            "はい",
            "1",
            "はい",
            "1",
            "30トン",
            "25トン",
        ],
        [
            "/start",
            "6",
            "いいえ",
            "いいえ",
            "はい",
            "1",
            "はい",
            "1",
            "30トン",
            "わからない",
            "/skip",
        ],
    ],
    "en": [
        [
            "/start",
            "/back",
            "1",
            "1",
            "¥300,000,000",
            "no",
            "no",
            "yes",
            "1",
            "yes",
            "1",
            "lots",
            "30 t",
            "12 t",
            "/why",
            "hello",
        ],
        [
            "/start",
            "2",
            "don't know",
            "/skip",
            "/why",
            "lots",
            "1",
            "many",
            "-5",
            "99999999 people",
            "about 300 people",
            "/back",
            "/summary",
            "help",
            "/start",
            "/continue",
            "/edit nothing",
            "/restart",
            "/cancel",
            "/start",
        ],
        [
            "/start",
            "9",
            "/summary",
            "/edit entity_type",
            "1",
            "1",
            "about 290,000,000 yen",
            "no",
            "no",
            "yes",
            "2",
            "5",
            "/back",
            "1",
            "no",
        ],
        ["/start", "1", "4", "¥200,000,000", "yes", "50 people", "yes"],
        ["/start", "1", "6", "¥100,000,000", "no", "no", "yes", "3", "2"],
        ["/start", "1", "1", "¥300,000,000", "no", "no", "yes", "1", "yes", "1", "30 t", "25 t"],
        ["/start", "6", "no", "no", "yes", "1", "yes", "1", "30 t", "don't know", "/skip"],
    ],
}


def converse(lang: str) -> tuple[list[tuple], list[str], set[str]]:
    """Per step how the input was taken and the reply keys; every text shown (messages and
    button labels); the verdicts reached."""
    keys, texts, verdicts = [], [], set()
    for script in DIALOGS[lang]:
        state = State(lang=lang)
        for text in script:
            state, replies = dialog_engine.step(state, UserInput(text=text), on=DEFAULT_DATE)
            keys.append((text, state.last.outcome, state.awaiting, [r.key for r in replies]))
            texts += [r.text for r in replies] + [c.label for r in replies for c in r.choices]
            verdicts.update(r.verdict["status"] for r in replies if r.verdict)
    return keys, texts, verdicts


def test_dialogs_alike_in_each_language(recorder):
    ja_keys, _, ja_verdicts = converse("ja")
    en_keys, en_texts, en_verdicts = converse("en")
    assert [k[1:] for k in en_keys] == [k[1:] for k in ja_keys]
    assert ja_verdicts == en_verdicts == set(typing.get_args(Status))
    assert {lang for lang, _ in recorder.keys} == set(LANGS)
    # nothing Japanese leaks into English except glosses and clause numbers
    leaked = [t for t in en_texts if 0 < len(CJK.findall(t)) >= len(LATIN.findall(t))]
    assert not leaked, leaked
