"""The console runner with hostile input (issue 13, item 10): undecodable bytes, an endless
line, Ctrl-C in --jsonl. Real processes, as staff and programs run it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from locales import t

ROOT = Path(__file__).resolve().parent.parent
CMD = [sys.executable, "-m", "bot.cli", "console", "--jsonl", "--date", "2024-06-01"]


def env(tmp_path: Path) -> dict[str, str]:
    return {"SUBSIDY_DB": str(tmp_path / "c.db"), "PATH": "", "PYTHONPATH": str(ROOT)}


def inputs(tmp_path: Path) -> list[str]:
    conn = sqlite3.connect(tmp_path / "c.db")
    try:
        sql = "SELECT raw_text FROM events WHERE direction = 'in' ORDER BY conversation_id, seq"
        return [r[0] for r in conn.execute(sql)]
    finally:
        conn.close()


def test_invalid_utf8_is_reasked_and_the_rest_still_read(tmp_path):
    stdin = b"\xff\xfe\x80 bad bytes\n" + "会社\n".encode()
    out = subprocess.run(CMD, input=stdin, capture_output=True, env=env(tmp_path), timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    turns = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert [turn["awaiting"] for turn in turns] == ["entity_type", "entity_type", "industry"]
    assert b"Traceback" not in out.stderr
    assert "\ufffd\ufffd\ufffd bad bytes" in inputs(tmp_path)


def test_an_endless_line_is_refused_politely_and_not_stored(tmp_path):
    stdin = "会" * 20_000 + "\n会社\n"
    out = subprocess.run(
        CMD, input=stdin, capture_output=True, text=True, env=env(tmp_path), timeout=60
    )
    assert out.returncode == 0, out.stderr
    opening, refused, answered = (json.loads(line) for line in out.stdout.splitlines())
    assert refused["messages"] == [
        {"text": t("robustness.console.too_long", "ja", max=1000), "choices": []}
    ]
    assert (refused["awaiting"], refused["verdict"], refused["answers"]) == (
        "entity_type",
        None,
        {},
    )
    assert answered["awaiting"] == "industry"
    assert max(len(text) for text in inputs(tmp_path)) <= 1000


def test_ctrl_c_in_jsonl_ends_quietly_keeping_what_was_said(tmp_path):
    proc = subprocess.Popen(
        CMD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env(tmp_path),
    )
    proc.stdout.readline()
    proc.stdin.write("会社\n")
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["awaiting"] == "industry"
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=20)
    assert code == 130
    assert "Traceback" not in proc.stderr.read()
    assert "会社" in inputs(tmp_path)
