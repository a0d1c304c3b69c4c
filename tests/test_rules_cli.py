"""The `subsidy-bot rules check` command as a user runs it: a real process, stdin to stdout."""

import json
import subprocess
import sys

import pytest

EXAMPLE = "examples/answers.json"


def run(stdin: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "rules", "check", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
    )


def test_example_file_is_eligible_with_exact_decimal():
    with open(EXAMPLE, encoding="utf-8") as f:
        out = run(f.read(), "--date", "2024-06-01")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    assert verdict["status"] == "eligible"
    co2 = next(r for r in verdict["reasons"] if r["criterion"] == "co2")
    assert co2["status"] == "met" and "10トン" in co2["message"]  # 64.1 - 54.1 is exactly 10
    assert set(verdict) == {"status", "reasons", "missing", "ruleset", "warnings"}
    assert set(co2) == {"criterion", "status", "clause", "message"}


def test_jsonl_gives_one_verdict_per_line_in_order():
    lines = '{"tax_arrears": true}\n{"entity_type": "other"}\n\n{"delivery": "lease"}\n'
    out = run(lines, "--jsonl", "--date", "2024-06-01")
    assert out.returncode == 0, out.stderr
    statuses = [json.loads(line)["status"] for line in out.stdout.splitlines()]
    assert statuses == ["ineligible", "undetermined", "ineligible"]


def test_expired_ruleset_warns_after_2025_03_31_quoting_the_supplementary_provision():
    out = run("{}", "--date", "2026-11-22")
    warning = json.loads(out.stdout)["warnings"][0]
    assert "「令和７（2025）年３月31日をもって、その効力を失う」" in warning
    assert "2025-03-31" in warning
    out = run("{}", "--date", "2025-03-31")
    assert json.loads(out.stdout)["warnings"] == []


def test_tonnes_take_any_exact_decimal():
    """An estimate's many places are kept and compared exactly: 12.70710272 → 10.165682176 is
    exactly 20 % (met), one billionth more after is not."""
    base = '{"project_type": "equipment_replacement", "co2_before_t": 12.70710272, '
    lines = base + '"co2_after_t": 10.165682176}\n' + base + '"co2_after_t": 10.165682177}\n'
    out = run(lines, "--jsonl", "--date", "2024-06-01")
    assert out.returncode == 0, out.stderr
    co2 = [
        next(r for r in json.loads(line)["reasons"] if r["criterion"] == "co2")
        for line in out.stdout.splitlines()
    ]
    assert [c["status"] for c in co2] == ["met", "not_met"]
    assert "12.70710272" in co2[0]["message"] and co2[0]["clause"] == "第4 2 (1)(2)"


def test_a_figure_before_of_zero_asks_to_check_it():
    out = run('{"project_type": "led", "co2_before_t": 0}', "--date", "2024-06-01")
    co2 = next(r for r in json.loads(out.stdout)["reasons"] if r["criterion"] == "co2")
    assert co2["status"] == "not_met" and "ご確認ください" in co2["message"]


def test_a_project_outside_4_is_accepted_and_ineligible():
    out = run('{"project_type": "other"}', "--date", "2024-06-01")
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)
    project = next(r for r in verdict["reasons"] if r["criterion"] == "project")
    assert verdict["status"] == "ineligible" and verdict["missing"] == []
    assert project["status"] == "not_met" and project["clause"] == "第4"
    assert "LED" in project["message"] and "コージェネレーション" in project["message"]


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        ('{"entity_type": "corp"}', "sole_proprietor"),
        ('{"colour": 1}', "colour"),
        ('{"capital_yen": -5}', "capital_yen"),
        ('{"co2_before_t": "abc"}', "co2_before_t"),
        ('{"capital_yen": true}', "not true/false"),
        ('{"employees": false}', "employees"),
        ('{"co2_after_t": true}', "co2_after_t"),
        ('{"co2_before_t": 1e13}', "10^9"),
        ("{x", "JSON"),
        ("[1, 2]", "JSON"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(stdin, needle):
    out = run(stdin)
    assert out.returncode == 2
    assert out.stdout == ""
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_date_exits_2():
    out = run("{}", "--date", "22/11/2026")
    assert out.returncode == 2 and "Traceback" not in out.stderr
