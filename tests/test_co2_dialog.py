"""The CO2 estimate inside the dialog (dialogs/co2_dialog.py): typed units converted, the
sub-dialog's commands, exact values recorded, the target stated from the ruleset."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from dialogs.engine import step
from dialogs.io import State, UserInput
from rules.co2 import factor_set
from rules.ruleset import ruleset_for

ON = dt.date(2026, 11, 29)
APPLICANT = ["/start", "株式会社", "製造業", "1000万円", "いいえ", "いいえ", "はい"]
LED = [*APPLICANT, "LED", "はい", "購入"]
BOILER = [*APPLICANT, "設備更新", "ボイラー", "はい", "購入"]


def talk(texts: list[str], state: State | None = None, lang: str = "ja"):
    s = state or State(lang=lang)
    replies = []
    for text in texts:
        inp = UserInput(choice=text[1:]) if text.startswith("!") else UserInput(text=text)
        s, replies = step(s, inp, ON)
    return s, "\n".join(r.text for r in replies)


def test_m3_is_city_gas_and_recorded_exactly_as_an_estimate():
    s, text = talk([*BOILER, "3万m3"])
    gas = factor_set(ON).fuels["city_gas"].value
    assert Decimal(s.answers["co2_before_t"]) == 30 * gas  # 30 千m³
    assert "co2_before_t" in s.approx and s.awaiting == "co2_after_t"
    assert "都市ガス" in text and str(gas) in text


def test_litres_ask_which_fuel_then_convert():
    s, text = talk([*BOILER, "12,000L"])
    assert s.co2 is not None and "燃料" in text and s.awaiting == "co2_before_t"
    s, text = talk(["灯油"], s)
    kerosene = factor_set(ON).fuels["kerosene"].value
    assert Decimal(s.answers["co2_before_t"]) == 12 * kerosene and s.co2 is None
    assert "12kL → 約30トン" in text


def test_kilograms_stay_tonnes_of_co2():
    s, _ = talk([*LED, "500kg"])
    assert s.answers["co2_before_t"] == "0.5" and s.co2 is None


def test_estimate_keeps_every_digit():
    s, _ = talk([*LED, "わからない", "157", "76", "28.3", "10", "256", "はい"])
    assert s.answers["co2_before_t"] == "12.70710272"
    assert s.answers["co2_after_t"] == "4.731723776"
    assert s.phase == "verdict" and s.verdict["status"] == "eligible"


@pytest.mark.parametrize(
    ("command", "phase"), [("やめる", "cancelled"), ("最初から", "asking"), ("飛ばす", "verdict")]
)
def test_leaving_commands_close_the_estimate(command, phase):
    s, _ = talk([*LED, "わからない", "157"])
    assert s.co2 is not None
    s, _ = talk([command], s)
    assert s.co2 is None and s.phase == phase
    if command == "飛ばす":
        assert "co2_before_t" in s.skipped


def test_back_at_the_first_question_returns_to_the_co2_question():
    s, _ = talk([*LED, "わからない"])
    s, text = talk(["戻る"], s)
    assert s.co2 is None and s.awaiting == "co2_before_t" and "見積もりの前" in text


def test_why_and_unknown_inside_keep_the_estimate_going():
    s, _ = talk([*LED, "わからない", "157"])
    s, text = talk(["なぜ？"], s)
    assert s.co2["at"] == "watts_before" and "第4" in text
    s, text = talk(["わからない"], s)
    assert s.co2["at"] == "watts_before" and "見積もりをやめる" in text


def test_efficiency_as_percent_or_fraction_and_units_checked():
    s, _ = talk([*BOILER, "わからない", "灯油"])
    s, text = talk(["5t"], s)  # kerosene is measured in kL
    assert s.co2["at"] == "amount_before" and "単位" in text
    s, _ = talk(["10kL", "!co2:same", "80", "0.95"], s)
    assert s.co2["values"]["efficiency_before"] == "0.8"
    assert s.co2["values"]["efficiency_after"] == "0.95" and s.co2["at"] == "accept"


def test_target_comes_from_the_ruleset():
    rs, _ = ruleset_for(ON)
    p = rs.projects["equipment_replacement"]
    s, text = talk([*BOILER, "30トン"])
    target = max(30 - p.min_reduction_t, 30 * (1 - p.min_reduction_ratio))
    assert f"更新後が年間 {target.normalize():f}トン以下なら" in text


def test_english_estimate():
    s, _ = talk([*LED[:1]], lang="en")
    answers = ["company", "manufacturing", "10000000", "no", "no", "yes", "LED", "yes"]
    s, text = talk([*answers, "purchase", "don't know", "157", "76", "28.3", "10", "256"], s)
    assert "30,545.92 kWh" in text and "substitute value" in text and s.co2["at"] == "accept"


def test_a_figure_before_of_zero_is_read_back():
    s, text = talk([*LED, "0トン"])
    assert s.phase == "confirming" and "co2_before_t" not in s.answers and "0トン" in text
    s, _ = talk(["違う"], s)
    assert s.awaiting == "co2_before_t" and "co2_before_t" not in s.answers
    s, _ = talk(["0トン", "そのとおり"], s)
    assert s.answers["co2_before_t"] == "0" and s.verdict["status"] == "ineligible"


def test_air_conditioning_without_kwh_goes_by_rated_power_and_cop():
    rs_kwh = ["わからない", "20kW", "60%", "10時間", "250日", "3", "4.5"]
    s, text = talk([*APPLICANT, "設備更新", "空調", "はい", "購入", "わからない", *rs_kwh])
    assert s.co2["kind"] == "electricity_rated" and s.co2["at"] == "accept"
    assert "30,000 kWh" in text and "20,000 kWh" in text  # 20 × 0.6 × 10 × 250; × 3 ÷ 4.5
    s, _ = talk(["使う"], s)
    factor = factor_set(ON).electricity.factors["substitute"].value
    assert Decimal(s.answers["co2_after_t"]) == 20000 * factor and s.co2 is None


@pytest.mark.parametrize(
    ("typed", "fuel", "amount"),
    [
        ("LPGを年間5,000kg", "lpg", 5),  # kg of a fuel named: its tonnes, not CO2
        ("灯油12kL", "kerosene", 12),
        ("都市ガス 3万m3", "city_gas", 30),
        ("A重油を年に20キロリットル", "a_heavy_oil", 20),  # not 20 kg of CO2
    ],
)
def test_a_fuel_named_with_its_amount_is_converted(typed, fuel, amount):
    s, text = talk([*BOILER, typed])
    assert Decimal(s.answers["co2_before_t"]) == amount * factor_set(ON).fuels[fuel].value
    assert "co2_before_t" in s.approx and "→" in text


def test_a_fuel_in_the_wrong_unit_is_asked_again():
    s, text = talk([*BOILER, "灯油 5t"])
    assert "co2_before_t" not in s.answers and "kL" in text
    s, _ = talk(["CO2 5トン"], s)
    assert s.answers["co2_before_t"] == "5" and "co2_before_t" not in s.approx


def test_a_choice_inside_the_estimate_answered_dont_know_or_unreadable_says_how_to_go_on():
    s, _ = talk([*BOILER, "わからない", "灯油", "8000リットル"])
    assert s.co2 is not None and s.co2["at"] == "fuel_after"
    s, text = talk(["わからない"], s)
    assert "見積もりをやめる" in text and "例のように入力" not in text
    assert s.co2["at"] == "fuel_after" and "co2_before_t" not in s.answers
    s, text = talk(["ガソリン"], s)  # not offered: choose a button, there is no example to copy
    assert "ボタン" in text and "例のように入力" not in text and s.co2["at"] == "fuel_after"
