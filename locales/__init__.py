"""Every word a user reads. Catalogues are YAML (nested keys, flattened to dotted ones);
`t()` fills str.format placeholders and adds a `<name>_label` for coded values. A placeholder
the caller does not pass is a figure or clause of the ruleset in force (rules.ruleset.figures):
texts never type a threshold or a clause number themselves."""

from __future__ import annotations

import os
from functools import cache, lru_cache
from importlib import resources

from rules import yaml_data
from rules.clock import texts_date
from rules.ruleset import all_rulesets, figures, ruleset_for

DEFAULT = "ja"
LANGS = ("ja", "en")
# Parameters whose values are codes from the answer model; their label is looked up by `t`.
LABELLED = ("entity_type", "industry", "project_type", "equipment", "delivery")
# Filled texts remembered by (key, language, parameters with their types) for the figures in
# force: a step renders the same question, button and progress texts again and again. Only
# for parameters of these types: equal values of them always read the same (True is not 1 by
# its type; 1.0 and Decimal("1.00") are never remembered).
_TEXTS: dict[tuple, tuple[dict, str]] = {}
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})
MEMO_SIZE = 4096  # texts kept (then forgotten all at once)


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


@cache
def catalog(lang: str) -> dict[str, str]:
    text = (resources.files("locales") / f"{lang}.yaml").read_text(encoding="utf-8")
    return _flatten(yaml_data.load(text))


def default_lang() -> str:
    lang = os.environ.get("SUBSIDY_LANG", DEFAULT)
    return lang if lang in LANGS else DEFAULT


def has(key: str, lang: str = DEFAULT) -> bool:
    return key in catalog(lang)


def t(key: str, lang: str | None = None, **params) -> str:
    lang = lang if lang in LANGS else default_lang()
    plain, filled = _templates(lang)
    text = plain.get(key)
    if text is not None:  # nothing to fill: the text as it is
        return text
    template = filled.get(key)
    if template is None:
        raise KeyError(f"missing locale key {key!r}")
    figures = _figures()
    types = tuple(map(type, params.values()))
    memo = (key, lang, tuple(params.items()), types) if _PLAIN_TYPES.issuperset(types) else None
    hit = _TEXTS.get(memo) if memo is not None else None
    if hit is not None and hit[0] is figures:  # filled with these very figures
        return hit[1]
    cat = catalog(lang)
    for name in LABELLED:
        if name in params and f"{name}_label" not in params:
            params[f"{name}_label"] = cat.get(f"choices.{name}.{params[name]}", params[name])
    text = template.format(**(figures | params))
    if memo is not None:
        if len(_TEXTS) >= MEMO_SIZE:
            _TEXTS.clear()
        _TEXTS[memo] = (figures, text)
    return text


@cache
def _templates(lang: str) -> tuple[dict[str, str], dict[str, str]]:
    """The texts `t` shows in `lang` (a key missing there: the default language's), split in
    those with nothing to fill and those with placeholders."""
    cat, default = catalog(lang), catalog(DEFAULT)
    plain, filled = {}, {}
    for key in default.keys() | cat.keys():
        template = cat.get(key) or default.get(key)
        if template is None:
            continue
        if "{" not in template and "}" not in template:
            plain[key] = template
        else:
            filled[key] = template
    return plain, filled


def _figures() -> dict:
    """The figures of the ruleset the texts quote now (rules.clock.texts_on, else today's)."""
    return _figures_on(texts_date())


@lru_cache(maxsize=64)
def _figures_on(on) -> dict:  # callers merge it into a new dict, never change it
    return _figures_of(ruleset_for(on)[0].id)


@cache
def _figures_of(ruleset_id: str) -> dict:
    return figures(next(r for r in all_rulesets() if r.id == ruleset_id))
