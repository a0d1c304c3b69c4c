"""The staff scenario files under tests/scenarios/ run as tests, through engine and storage."""

from pathlib import Path

import pytest
import yaml

from bot.console.scenario import run
from bot.storage import Storage

FILES = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def test_scenarios_cover_every_outcome_and_command():
    texts = [f.read_text(encoding="utf-8") for f in FILES]
    for outcome in ("eligible", "ineligible", "undetermined"):
        assert any(f"verdict: {outcome}" in t for t in texts), outcome
    for word in (
        "/back",
        "戻る",
        "回答確認",
        "直す",
        "なぜ",
        "ヘルプ",
        "わからない",
        "/start",
        "最初から",
        "やめる",
    ):
        assert any(word in t for t in texts), word


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario(path, tmp_path):
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    with Storage(tmp_path / "s.db") as storage:
        results = run(scenario, storage)
    assert len(results) == len(scenario["steps"])
    failures = [(n, shown, problems) for n, shown, problems in results if problems]
    assert not failures


def test_script_command_reports_failure(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  - expect: {awaiting: industry}\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--script", str(bad)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={"SUBSIDY_DB": str(tmp_path / "x.db"), "PATH": ""},
    )
    assert out.returncode == 1
    assert "awaiting 'entity_type' != 'industry'" in out.stdout
