"""The speed harness runs end to end from the installed command (numbers printed, not judged:
speed is measured by bench/, never asserted in tests)."""

import json

from bot.cli import main


def test_quick_bench_prints_the_json_contract(tmp_path, capsys):
    assert main(["bench", "--quick", "--json", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("ratio_mean", "ratio_p99", "throughput_ratio", "limiter_ratio",
                "db_bytes_per_1000", "rss_mb_10000_open", "console_first_turn_s",
                "rules_check_s"):  # fmt: skip
        assert isinstance(summary[key], float), key
    assert set(summary["api_calls_per_update"]) == {"floor", "project"}
    written = json.loads(next(tmp_path.glob("*-quick.json")).read_text())
    # the concurrent run checked every chat's stored inputs (it raises otherwise)
    assert written["concurrent"]["stored_check"]["wrong"] == 0
    assert list(tmp_path.glob("*-quick.md"))
