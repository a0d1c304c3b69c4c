"""The CO2 estimate: the table in tests/data/co2_cases.yaml through the command's code, and the
command itself as a real process (exact JSON numbers, --jsonl, exit status 2 naming the field)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.co2_cli import run_one
from bot.rules_cli import InputError
from rules import evaluate
from rules.co2 import all_factor_sets, estimate, factor_set, meets
from rules.ruleset import ruleset_for

TABLE = yaml.safe_load(
    (Path(__file__).parent / "data" / "co2_cases.yaml").read_text(encoding="utf-8")
)
ON = TABLE["date"]
EXAMPLE = {
    "kind": "lighting",
    "fixtures": 157,
    "watts_before": 76,
    "watts_after": 28.3,
    "hours_per_day": 10,
    "days_per_year": 256,
}


def exact(value) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_case(case):
    text = json.dumps(case["input"])
    want = case["expect"]
    if "error" in want:
        with pytest.raises(InputError) as err:
            run_one(text, 1, ON)
        assert want["error"] in str(err.value) and "\n" not in str(err.value)
        return
    out = run_one(text, 1, ON)
    for key in ("co2_before_t", "co2_after_t", "reduction_t", "reduction_pct"):
        if key in want:
            assert exact(out[key]) == exact(want[key]), key
    if "meets" in want:
        assert out["meets"] == want["meets"]
    if "kwh" in want:
        est = estimate(json.loads(text, parse_float=Decimal), ON)
        amounts = [s.params["amount"] for s in est.working if s.key.startswith("emission_")]
        assert amounts == [Decimal(k) for k in want["kwh"]]
    assert out["working"] and out["factors"]


def test_factors_are_cited_and_dated():
    for fs in all_factor_sets():
        factors = [*fs.electricity.factors.values(), *fs.fuels.values()]
        assert len(fs.fuels) == 6
        assert all(f.source and f.year and f.unit.startswith("t-CO2/") for f in factors)
    assert factor_set(dt.date(2020, 1, 1)) == all_factor_sets()[0]  # no older set: the oldest


def test_factor_data_is_strict(tmp_path):
    from pydantic import ValidationError

    from rules.co2 import FactorSet

    data = yaml.safe_load(
        (Path(__file__).parents[1] / "rules/emission_factors/2026-01-01.yaml").read_text("utf-8")
    )
    data["fuels"]["kerosene"]["colour"] = "blue"
    with pytest.raises(ValidationError):
        FactorSet.model_validate(data)


def test_thresholds_come_from_the_ruleset():
    """The 10 t / 20 % / 50 % tests follow the ruleset: a case exactly at each limit passes,
    one just under it fails, whatever the figures in the data are."""
    rs, _ = ruleset_for(ON)
    led = rs.projects["led"]
    before = Decimal(100)
    at_ratio = before * (1 - led.min_reduction_ratio)
    assert led.reduction_tests(before, at_ratio) == (before - at_ratio >= led.min_reduction_t, True)
    assert led.target_after_t(before) == max(before - led.min_reduction_t, at_ratio)


def co2(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "co2", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )


def test_command_prints_exact_json_numbers():
    out = co2(json.dumps(EXAMPLE), "--date", "2026-11-29")
    assert out.returncode == 0, out.stderr
    assert '"co2_before_t": 12.70710272' in out.stdout  # a JSON number, every digit kept
    result = json.loads(out.stdout, parse_float=Decimal)
    assert set(result) == {
        "co2_before_t",
        "co2_after_t",
        "reduction_t",
        "reduction_pct",
        "meets",
        "factors",
        "working",
    }
    assert result["co2_after_t"] == Decimal("4.731723776")
    assert result["factors"][0]["value"] == Decimal("0.000416")
    assert set(result["factors"][0]) == {"name", "value", "unit", "source", "year"}
    assert "30,545.92" in result["working"][0] and "11,374.336" in result["working"][1]


def test_command_jsonl_and_bad_line():
    lines = (
        json.dumps(EXAMPLE)
        + '\n\n{"kind": "fuel", "fuel": "lpg", "amount_before": 1, "amount_after": 0}\n'
    )
    out = co2(lines, "--jsonl")
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["co2_before_t"] for x in out.stdout.splitlines()] == [12.70710272, 2.99]
    bad = co2(lines + '{"kind": "fuel", "fuel": "lpg", "amount_before": 1}\n', "--jsonl")
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "amount_after" in bad.stderr and "4" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert co2("{}", "--date", "tomorrow").returncode == 2


TONNES = st.decimals(min_value=0, max_value=10**5, places=3, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(before=TONNES, after=TONNES)
def test_meets_agrees_with_the_verdict(before, after):
    """The command's `meets` and the rules engine decide the same, on the same exact figures."""
    answers = {"project_type": "led", "co2_before_t": before, "co2_after_t": after}
    for project, ok in meets(before, after, ON).items():
        reasons = evaluate(answers | {"project_type": project}, on=ON).reasons
        co2 = next(r for r in reasons if r.criterion == "co2")
        assert ok == (co2.status == "met"), (project, before, after)


@settings(max_examples=200, deadline=None)
@given(before=TONNES.filter(lambda d: d > 0))
def test_the_target_shown_passes_and_a_kilogram_more_fails(before):
    """The figure the question after names (cut to the kilogram) meets the test; 1 kg above the
    exact target does not."""
    rs, _ = ruleset_for(ON)
    for p in (rs.projects["led"], rs.projects["equipment_replacement"]):
        exact = p.target_after_t(before)
        shown = exact.quantize(Decimal("0.001"), "ROUND_DOWN")
        assert any(p.reduction_tests(before, shown))
        assert not any(p.reduction_tests(before, exact + Decimal("0.001")))


def test_long_inputs_are_multiplied_exactly():
    """28 significant digits would round this product; the estimate keeps every digit."""
    from fractions import Fraction

    data = {
        "kind": "lighting",
        "fixtures": 999999,
        "watts_before": Decimal("99999.123456789"),
        "watts_after": Decimal("1.000000001"),
        "hours_per_day": Decimal("23.999999"),
        "days_per_year": Decimal("365.123456"),
    }
    factor = factor_set(ON).electricity.factors["substitute"].value
    exact = (
        Fraction(999999)
        * Fraction(data["watts_before"])
        * Fraction(data["hours_per_day"])
        * Fraction(data["days_per_year"])
        / 1000
        * Fraction(factor)
    )
    assert Fraction(estimate(data, ON).before_t) == exact
