"""`subsidy-bot admin …` through the real CLI entry point, on a database filled by real dialogs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_admin_report import (
    ELIGIBLE,
    FUNNEL,
    REASKS_THEN_CANCEL,
    SCRIPTS,
    rows,
)

from bot.admin import report
from bot.admin.database import open_read_only
from bot.cli import main
from bot.storage import Storage
from rules import Answers


@pytest.fixture
def db(filled_db, tmp_path, monkeypatch):
    path = tmp_path / "subsidy.db"
    shutil.copy(filled_db, path)
    monkeypatch.setenv("SUBSIDY_DB", str(path))  # commands read it like the bot does
    monkeypatch.delenv("SUBSIDY_LANG", raising=False)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["admin", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_list(db, capsys):
    before = digest(db)
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert [r[0] for r in rows(out)[2:]] == ["5", "4", "3", "2", "1"]
    assert digest(db) == before  # read-only


def test_list_filters(db, capsys):
    _, out, _ = run(
        capsys,
        "list",
        "--outcome",
        "none",
        "--since",
        "2025-04-02",
        "--channel",
        "telegram",
        "--db",
        str(db),
    )
    assert [r[0] for r in rows(out)[2:]] == ["4"]
    _, out, _ = run(capsys, "list", "--until", "2025-04-01", "--limit", "1")
    assert [r[0] for r in rows(out)[2:]] == ["2"]
    _, out, _ = run(capsys, "list", "--outcome", "undetermined", "--channel", "console")
    assert out == "該当する会話はありません。\n"


def test_bad_arguments(db, capsys):
    with pytest.raises(SystemExit):
        main(["admin", "list", "--since", "April"])
    with pytest.raises(SystemExit):
        main(["admin", "list", "--outcome", "maybe"])
    capsys.readouterr()


def test_missing_or_foreign_database(tmp_path, capsys):
    code, out, err = run(capsys, "list", "--db", str(tmp_path / "nope.db"))
    assert (code, out) == (1, "")
    assert "データベースがありません" in err
    assert not (tmp_path / "nope.db").exists()  # not created by a read
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    code, _, err = run(capsys, "stats", "--db", str(other))
    assert code == 1 and "このボットのデータベースではありません" in err


def test_show(db, capsys):
    code, out, _ = run(capsys, "show", "1")
    assert code == 0
    said = [
        line.split(" 利用者: ")[1].split("  ")[0]
        for line in out.splitlines()
        if " 利用者: " in line
    ]
    assert said == ELIGIBLE
    assert "判定: 対象見込み（要領 tochigi-datsutanso-2024-04-01）" in out
    _, out, _ = run(capsys, "show", "4", "--full")
    assert out.count("〔再質問") == 3
    assert len([x for x in out.splitlines() if " 利用者: " in x]) == len(REASKS_THEN_CANCEL)
    code, out, err = run(capsys, "show", "99")
    assert (code, out, err) == (1, "", "会話 #99 はありません。\n")


def test_stats(db, capsys):
    code, out, _ = run(capsys, "stats")
    assert code == 0
    with open_read_only(db) as conn:
        assert out == report.stats_report(conn, "ja") + "\n"  # the text Telegram gets too
    assert ["資本金", "5", "4", "1"] in rows(out)
    _, out, _ = run(capsys, "stats", "--since", "2025-04-03")
    assert rows(out)[:5] == [
        ["会話の数:", "2"],
        ["対象見込み:", "0"],
        ["対象外:", "0"],
        ["判定不能:", "1"],
        ["判定なし:", "1"],
    ]
    assert ["県内の事業所", "2", "1", "1"] in rows(out)


def test_stats_plot(db, tmp_path, capsys):
    png = tmp_path / "stats.png"
    code, _, err = run(capsys, "stats", "--plot", str(png))
    assert code == 0 and str(png) in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_export_csv_opens_in_excel(db, capsysbinary):
    assert main(["admin", "export", "--raw"]) == 0
    data = capsysbinary.readouterr().out
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel then reads UTF-8
    assert b"\r\n" in data
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert list(table[0]) == [
        "id",
        "reference",
        "channel",
        "chat_id",
        "user_id",
        "lang",
        "started_at",
        "updated_at",
        "status",
        "verdict_status",
        "ruleset",
        "last_question",
        "is_test",
        *Answers.model_fields,
    ]
    assert [r["id"] for r in table] == ["1", "2", "3", "4", "5"]
    first = table[0]
    assert first["started_at"] == "2025-04-01T09:00:01+09:00"
    assert (
        first["entity_type"],
        first["capital_yen"],
        first["tax_arrears"],
        first["co2_after_t"],
        first["employees"],
    ) == ("company", "300000000", "False", "10", "")
    assert table[2]["last_question"] == "capital_yen" and table[2]["user_id"] == ""


def test_export_jsonl_to_file(db, tmp_path, capsys):
    out_file = tmp_path / "out.jsonl"
    code, out, err = run(
        capsys,
        "export",
        "--raw",
        "--format",
        "jsonl",
        "-o",
        str(out_file),
        "--outcome",
        "ineligible",
    )
    assert (code, out) == (0, "") and "1行を書き出しました" in err
    (row,) = [json.loads(line) for line in out_file.read_text("utf-8").splitlines()]
    assert row["id"] == 2 and row["tax_arrears"] is True and row["capital_yen"] == 300000000
    assert row["verdict_status"] == "ineligible" and row["project_type"] is None


def test_export_events(db, tmp_path, capsys):
    out_file = tmp_path / "events.csv"
    assert run(capsys, "export", "--raw", "--events", "-o", str(out_file))[0] == 0
    events = list(csv.DictReader(io.StringIO(out_file.read_text("utf-8-sig"), newline="")))
    n_inputs = sum(len(script[-1]) for script in SCRIPTS)
    assert sum(e["direction"] == "in" for e in events) == n_inputs
    assert [e["raw_text"] for e in events if e["outcome"] == "reask"] == [
        "ラーメン",
        "たくさん",
        "多分",
    ]
    verdicts = [(e["conversation_id"], e["verdict"]) for e in events if e["verdict"]]
    assert verdicts == [("1", "eligible"), ("2", "ineligible"), ("5", "undetermined")]
    assert any("\n" in e["raw_text"] for e in events)  # multi-line messages survive quoting
    _, out, _ = run(
        capsys, "export", "--raw", "--events", "--format", "jsonl", "--channel", "console"
    )
    lines = [json.loads(x) for x in out.splitlines()]
    assert {x["conversation_id"] for x in lines} == {3} and len(lines) == 6
    assert lines[2]["value"] == "company" and lines[2]["at"] == "2025-04-02T01:00:03+09:00"


def test_purge(db, capsys):
    # Cut off somewhere in the 33 hours between conversation 3 (04-01 16:00 UTC) and 4.
    days = (datetime.now(UTC) - datetime(2025, 4, 1, 17, 0, tzinfo=UTC)).days
    code, out, _ = run(capsys, "purge", "--older-than", str(days))
    assert code == 0
    assert out == (
        f"最終更新が{days}日より前の会話を削除しました: 会話 3件、記録 44件、入力 21件\n"
    )
    _, out, _ = run(capsys, "list")
    assert [r[0] for r in rows(out)[2:]] == ["5", "4"]
    code, _, err = run(capsys, "purge", "--older-than", "-1")
    assert code == 1 and err


def test_delete_user(db, capsys):
    code, out, _ = run(capsys, "delete-user", "102")
    assert code == 0
    assert out == "利用者 102 のデータを削除しました: 会話 1件、記録 13件、入力 6件\n"
    _, out, _ = run(capsys, "delete-user", "102")
    assert "会話 0件" in out
    _, out, _ = run(capsys, "stats")
    assert rows(out)[2] == ["対象外:", "0"]


def test_empty_database(tmp_path, capsysbinary):
    path = tmp_path / "empty.db"
    Storage(path).close()

    def run_bytes(*argv) -> tuple[int, str]:
        code = main(["admin", *argv, "--db", str(path)])
        return code, capsysbinary.readouterr().out.decode("utf-8-sig")

    assert run_bytes("list") == (0, "該当する会話はありません。\n")
    assert run_bytes("stats") == (0, "該当する会話はありません。\n")
    code, out = run_bytes("export", "--raw")
    assert code == 0 and out.strip().split(",")[-len(Answers.model_fields) :] == list(
        Answers.model_fields
    )
    assert run_bytes("export", "--format", "jsonl") == (0, "")
    assert run_bytes("purge", "--older-than", "0")[1].endswith("会話 0件、記録 0件、入力 0件\n")


def test_hash_password_from_stdin(capsys, monkeypatch):
    from datasette_auth_passwords.utils import verify_password as verify

    monkeypatch.setattr(sys, "stdin", io.StringIO("秘密のパスワード\n"))
    code, out, _ = run(capsys, "hash-password")
    assert code == 0 and verify("秘密のパスワード", out.strip())
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    assert run(capsys, "hash-password") == (1, "", "パスワードが空です。\n")


def test_console_script(db):
    """The installed `subsidy-bot` runs it too (a real process, stdout as bytes)."""
    exe = shutil.which("subsidy-bot", path=str(Path(sys.executable).parent))
    out = subprocess.run(
        [exe, "admin", "export", "--raw", "--db", str(db), "--outcome", "eligible"],
        capture_output=True,
        check=True,
    )
    assert out.stdout.startswith(b"\xef\xbb\xbfid,reference,channel")
    assert out.stdout.count(b"\r\n") == 2


def test_funnel_numbers_match_the_report_module(db, capsys):
    _, out, _ = run(capsys, "stats")
    labels = report.labels("question", "ja")
    for q, counts in FUNNEL.items():
        assert [labels[q], *map(str, counts)] in rows(out)


def test_english(db, capsys, monkeypatch):
    monkeypatch.setenv("SUBSIDY_LANG", "en")
    _, out, _ = run(capsys, "list", "--limit", "1")
    assert rows(out)[1][:3] == ["No.", "Reference", "number"]
    _, out, _ = run(capsys, "show", "4", "--lang", "ja")
    assert "〔再質問 事業者の種類〕" in out
