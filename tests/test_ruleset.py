"""The rule data in rules/data/: a strict loader, a version in force today, the 附則 quoted from
the guideline's own text, and one clock (Asia/Tokyo) for every face."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import re
import unicodedata
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from rules.clock import today
from rules.ruleset import Ruleset, RulesetError, data_files, in_force, load

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
FILES = data_files()


def raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def mappings(tree, path=()):
    """Every mapping in the data, with its path (lists of mappings included)."""
    if isinstance(tree, dict):
        yield path, tree
        for key, value in tree.items():
            yield from mappings(value, (*path, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from mappings(value, (*path, i))


def at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def test_there_is_rule_data():
    assert FILES, "no rules/data/*.yaml"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_every_file_loads_strictly(path):
    rs = load(path)
    assert rs.effective_from.isoformat() == path.stem, "name files by their effective date"


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_misspelt_key_fails_loudly(path):
    """The example from the review: `min_reduction_tonnes` once loaded silently and turned the LED
    CO2 test off."""
    data = raw(path)
    led = data["projects"]["led"]
    led["min_reduction_tonnes"] = led.pop("min_reduction_t")
    with pytest.raises(ValidationError, match="min_reduction_tonnes"):
        Ruleset.model_validate(data)


def test_loading_a_misspelt_file_names_the_file_and_the_key(tmp_path):
    data = raw(FILES[-1])
    data["projects"]["led"]["min_reduction_tonnes"] = data["projects"]["led"].pop("min_reduction_t")
    bad = tmp_path / "2099-04-01.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RulesetError) as caught:
        load(bad)
    assert "2099-04-01.yaml" in str(caught.value)
    assert "projects.led.min_reduction_tonnes" in str(caught.value)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_an_unknown_key_fails_in_every_section(path):
    """Every mapping in the file, however deep, refuses a key it does not know."""
    data = raw(path)
    loose = []
    for where, _ in mappings(data):
        bad = copy.deepcopy(data)
        at(bad, where)["colour"] = "blue"
        try:
            Ruleset.model_validate(bad)
        except ValidationError:
            continue
        loose.append(".".join(map(str, where)) or "(top level)")
    assert not loose, f"these sections accept unknown keys: {loose}"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d["size_limits"]["rows"].pop("hotel"), "hotel"),
        (lambda d: d["applicant_kinds"].pop("cooperative"), "cooperative"),
        (lambda d: d["applicant_kinds"].update(ngo={"clause": "x", "size_test": "none"}), "ngo"),
        (lambda d: d["projects"]["equipment_replacement"]["equipment"].append("solar"), "solar"),
        (lambda d: d["projects"]["equipment_replacement"]["equipment"].append("other"), "other"),
        (lambda d: d["projects"].update(other={"clause": "第4"}), "other"),
        (lambda d: d["projects"].pop("cogeneration"), "cogeneration"),
        (lambda d: d["ask_order"].remove("delivery"), "delivery"),
        (lambda d: d["excluded_delivery"]["values"].append("rental"), "rental"),
        (lambda d: d["size_limits"]["rows"]["retail"].update(sme_law_group="shops"), "retail"),
        (lambda d: d["projects"]["led"].pop("min_reduction_ratio"), "go together"),
        (lambda d: d["applicant_kinds"]["company"].update(size_test="capital"), "size_test"),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_values_must_match_the_answer_model(change, needle):
    data = raw(FILES[-1])
    change(data)
    with pytest.raises(ValidationError, match=needle):
        Ruleset.model_validate(data)


def test_a_ruleset_is_in_force_today():
    """Fails the day the data no longer covers today (effective_from ≤ today in Asia/Tokyo): a
    screening must never run on no rules at all."""
    assert in_force(today()) is not None, f"no rules/data/*.yaml is in force on {today()}"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the guideline text (../shared/seeds) is absent")
@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_expiry_is_quoted_from_the_guideline(path):
    """The warning quotes the 附則 word for word, and its date is the date the text says."""
    rs = load(path)
    if rs.expiry is None:
        pytest.skip("no stated expiry")
    seed = (SEEDS.parent / rs.source).read_text(encoding="utf-8")
    assert rs.expiry.text in re.sub(r"\s+", "", seed), rs.expiry.text
    stated = unicodedata.normalize("NFKC", rs.expiry.text)
    year, month, day = re.search(r"\((\d{4})\)年(\d+)月(\d+)日", stated).groups()
    assert dt.date(int(year), int(month), int(day)) == rs.expiry.date


def test_today_is_the_date_in_japan():
    evening_utc = dt.datetime(2025, 3, 31, 15, 30, tzinfo=dt.UTC)  # 00:30 on 1 April in Tochigi
    assert today(evening_utc) == dt.date(2025, 4, 1)
    assert today(dt.datetime(2025, 3, 31, 14, 59, tzinfo=dt.UTC)) == dt.date(2025, 3, 31)


def test_no_face_computes_today_on_its_own():
    """Every face takes "today" from rules.clock (the server's own date may be a day behind)."""
    offenders = []
    files = [f for d in ("bot", "dialogs", "rules", "locales") for f in (ROOT / d).rglob("*.py")]
    for file in sorted(files):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("today", "now")
                and file.name != "clock.py"
                and ast.unparse(node.func.value) in ("dt.date", "date", "datetime.date")
            ):
                offenders.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"use rules.clock.today(): {offenders}"
