"""Table-driven tests for dialogs.parsing: the rows live in tests/data/parsing_cases.yaml."""

from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dialogs import parsing
from dialogs.parsing import (
    Parsed,
    normalize,
    parse_choice,
    parse_count,
    parse_money,
    parse_tonnes,
    parse_yes_no,
)

CASES = yaml.safe_load((Path(__file__).parent / "data" / "parsing_cases.yaml").read_text("utf-8"))
PARSERS = {
    "money": parse_money,
    "count": parse_count,
    "tonnes": parse_tonnes,
    "yes_no": parse_yes_no,
}
OPTIONS = [(value, labels) for value, labels in CASES["choice"]["options"]]


def _rows(kind, rows):
    return [pytest.param(kind, row, id=f"{kind}:{row['text']!r}") for row in rows]


def _check(got, row, kind):
    assert isinstance(got, Parsed)
    if "error" in row:
        assert (got.ok, got.value, got.error) == (False, None, row["error"])
        return
    assert got.ok and got.error is None, got
    expected = row["value"]
    if kind == "tonnes":  # exact Decimal, compared as written: "0.5" is not "0.500"
        assert isinstance(got.value, Decimal) and str(got.value) == expected
    elif kind == "yes_no":
        assert got.value is expected
    elif kind == "choice":
        assert got.value == expected
    else:
        assert type(got.value) is int and got.value == expected
    assert got.approx is row.get("approx", False)


@pytest.mark.parametrize(("kind", "row"), [p for kind in PARSERS for p in _rows(kind, CASES[kind])])
def test_table(kind, row):
    _check(PARSERS[kind](row["text"]), row, kind)


@pytest.mark.parametrize(("kind", "row"), _rows("choice", CASES["choice"]["cases"]))
def test_choice_table(kind, row):
    _check(parse_choice(row["text"], OPTIONS), row, kind)


@pytest.mark.parametrize(("kind", "row"), _rows("normalize", CASES["normalize"]))
def test_normalize_table(kind, row):
    assert normalize(row["text"]) == row["value"]


def test_value_is_never_a_float():
    assert parse_money("2.3億").value == 230_000_000
    assert parse_tonnes("64.1").value == Decimal("64.1")


def test_removable_words_hold_no_numerals():
    # a filler, unit or marker holding a numeral could eat part of a number ("5万円" read as 5);
    # the names of CO2 are whole words, never part of a number
    for _, roles in parsing._KINDS.values():
        words = [w.replace("co2", "").replace("二酸化炭素", "") for w in roles]
        assert not [w for w in words if parsing._NUMERAL.search(w)]


ALL = [*PARSERS.values(), lambda text: parse_choice(text, OPTIONS)]
# text made of the characters the number, yes/no and choice paths care about
NUMBERISH = st.text(
    alphabet="0123456789.,-~ー 約億万千百十一二三壱萬" + "円人名トンtkgco?はです分から有無"
)


@given(st.text())
def test_never_raises(text):
    for parse in ALL:
        assert isinstance(parse(text), Parsed)


@given(NUMBERISH)
def test_never_raises_on_number_like_text(text):
    for parse in ALL:
        got = parse(text)
        assert isinstance(got, Parsed) and got.ok == (got.error is None)
