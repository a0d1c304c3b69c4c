"""The dialog engine, Smart Answers style: every question reachable, every validation fires,
every command works from every phase, the rules decide the next question."""

import datetime as dt
import json
import re
import subprocess
import sys
from collections import deque
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialogs.engine import step
from dialogs.io import State, UserInput
from dialogs.machine import STATES
from dialogs.questions import questions
from rules import evaluate

ON = dt.date(2024, 6, 1)
SAMPLES = {  # typed answers per kind: under every 別表 limit, between, over every limit
    "money": ["1000万円", "1億円", "10億円"],
    "count": ["10人", "300人", "1000人"],
    "tonnes": ["0", "8", "100"],
    "yes_no": ["はい", "いいえ"],
}


def send(state, text=None, choice=None):
    return step(state, UserInput(text=text, choice=choice), on=ON)


def started():
    return send(State(), "/start")[0]


def explore():
    """Breadth-first over the dialog tree with sample answers: question -> next questions."""
    seen_next: dict[str, set] = {}
    outcomes = set()
    queue, visited = deque([started()]), set()
    while queue:
        s = queue.popleft()
        q = questions()[s.awaiting]
        answers = [f"{q.id}:{v}" for v in q.choices] if q.kind == "choice" else SAMPLES[q.kind]
        for a in answers:
            new, _ = send(s, choice=a) if ":" in a else send(s, a)
            key = json.dumps(new.answers, sort_keys=True)
            seen_next.setdefault(q.id, set()).add(new.awaiting or new.verdict["status"])
            if new.phase == "verdict":
                outcomes.add(new.verdict["status"])
            elif key not in visited:
                visited.add(key)
                queue.append(new)
    return seen_next, outcomes


@cache
def explored():
    return explore()


def test_every_question_is_reachable_and_every_outcome_reached():
    seen_next, outcomes = explored()
    reached = {"entity_type"} | {n for ns in seen_next.values() for n in ns}
    assert set(questions()) <= reached
    assert outcomes == {"eligible", "ineligible", "undetermined"}


@pytest.mark.parametrize("qid", list(questions()))
def test_every_question_leads_somewhere(qid):
    seen_next, _ = explored()
    assert seen_next[qid], qid
    assert qid not in seen_next[qid]  # an accepted answer never asks the same again


def path_to(qid):
    """A state awaiting `qid`, found by the exploration's sample answers."""
    queue = deque([started()])
    while queue:
        s = queue.popleft()
        if s.awaiting == qid:
            return s
        q = questions()[s.awaiting]
        answers = [f"{q.id}:{v}" for v in q.choices] if q.kind == "choice" else SAMPLES[q.kind]
        for a in answers:
            new = (send(s, choice=a) if ":" in a else send(s, a))[0]
            if new.phase == "asking":
                queue.append(new)
    raise AssertionError(qid)


@pytest.mark.parametrize("qid", list(questions()))
def test_every_validation_fires(qid):
    s = path_to(qid)
    kind = questions()[qid].kind
    cases = [
        ("たくさん", "reask", "すみません"),
        ("", "reask", "すみません"),
        ("わからない", "help", "分からない場合のご案内"),
    ]
    if kind in ("money", "count", "tonnes"):
        cases += [("-5", "reask", "マイナス"), ("999999999999999", "reask", "大きすぎる")]
    for text, outcome, needle in cases:
        new, replies = send(s, text)
        assert new.awaiting == qid and new.answers == s.answers, text
        assert new.last.outcome == outcome, text
        assert needle in replies[-1].text, text
    stale = send(s, choice="no_such_question:1")[0]
    assert stale.last.outcome == "ignored" and stale.answers == s.answers


def test_next_question_is_always_the_rules_first_missing_field():
    s = started()
    for text in [
        "会社",
        "製造業",
        "4億円",
        "250人",
        "いいえ",
        "いいえ",
        "はい",
        "設備更新",
        "ボイラー",
        "はい",
        "購入",
        "100",
        "85",
    ]:
        expected = evaluate(s.answers, on=ON).missing[0]
        assert s.awaiting == expected
        s = send(s, text)[0]
    assert s.phase == "verdict" and s.verdict["status"] == "eligible"


def test_no_question_asked_that_cannot_change_the_outcome():
    s = started()
    asked = []
    for text in ["会社", "製造業", "1億円", "いいえ", "いいえ", "はい", "コージェネ", "購入"]:
        asked.append(s.awaiting)
        s = send(s, text)[0]
    assert s.verdict["status"] == "eligible"
    assert not {
        "employees",
        "equipment",
        "replaces_existing",
        "co2_before_t",
        "co2_after_t",
        "blue_return",
    } & set(asked)


COMMANDS = [
    "/back",
    "/restart",
    "/help",
    "/why",
    "/summary",
    "/cancel",
    "/start",
    "/continue",
    "/edit industry",
    "/skip",
    "戻る",
    "最初から",
    "ヘルプ",
    "なぜ？",
    "回答確認",
    "やめる",
    "飛ばす",
]


def in_phase(phase):
    s = started()
    if phase == "start":
        return State()
    for text in ["会社", "製造業"]:
        s = send(s, text)[0]
    if phase == "verdict":
        s = send(s, "/edit industry")[0]
        s = send(send(s, "製造業")[0], "1億円")[0]
        s = send(s, "はい")[0]  # tax arrears: ineligible at once
        assert s.phase == "verdict"
    if phase == "cancelled":
        s = send(s, "やめる")[0]
    return s


@pytest.mark.parametrize("phase", STATES)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_works_from_every_phase(phase, command):
    s = in_phase(phase)
    new, replies = send(s, command)
    assert replies, "every input gets an answer"
    assert new.phase in STATES
    if new.last.outcome != "ignored":  # a refused command changes nothing
        return
    assert new.answers == s.answers and new.phase == s.phase


def test_back_changes_the_previous_answer_and_drops_what_no_longer_applies():
    s = started()
    for text in ["会社", "小売", "1億円", "30人"]:
        s = send(s, text)[0]
    assert s.answers["employees"] == 30 and s.awaiting == "tax_arrears"
    s = send(s, "/edit entity_type")[0]
    s = send(s, "医療法人")[0]  # no size test: industry, capital, employees no longer apply
    assert s.answers == {"entity_type": "medical_corporation"}
    assert s.history == ["entity_type"] and s.awaiting == "tax_arrears"
    s = send(s, "戻る")[0]
    assert s.awaiting == "entity_type" and s.answers == {}


def test_edit_keeps_later_answers_that_still_apply():
    s = started()
    for text in ["会社", "製造業", "1億円", "いいえ", "いいえ"]:
        s = send(s, text)[0]
    s = send(send(s, "/edit industry")[0], "小売")[0]  # 1億円 now exceeds the retail limit
    assert s.awaiting == "employees"
    assert s.answers["tax_arrears"] is False and s.answers["antisocial_forces"] is False


def test_state_is_plain_json_and_replays():
    s = started()
    for text in ["会社", "製造業"]:
        s = send(s, text)[0]
    restored = State.model_validate_json(s.model_dump_json())
    assert restored == s
    assert send(restored, "3億円")[0] == send(s, "3億円")[0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(
                COMMANDS
                + [
                    "はい",
                    "いいえ",
                    "1",
                    "3億円",
                    "約80名",
                    "12.5t",
                    "industry:retail",
                    "co2_before_t:?",
                ]
            ),
        ),
        max_size=12,
    )
)
def test_any_input_sequence_never_raises(inputs):
    s = started()
    for text in inputs:
        s, replies = send(s, text) if ":" not in text else send(s, choice=text)
        assert replies
        assert State.model_validate_json(s.model_dump_json()) == s


def test_console_jsonl_converses_line_by_line(tmp_path):
    """A real process: each line written gets exactly one JSON object back before the next."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "console", "--jsonl", "--date", "2024-06-01"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={"SUBSIDY_DB": str(tmp_path / "c.db"), "PATH": ""},
    )
    try:
        opening = json.loads(proc.stdout.readline())
        assert opening["awaiting"] == "entity_type" and opening["verdict"] is None
        assert "会社（株式会社・有限会社・合同会社など）" in opening["messages"][-1]["choices"]
        for line, awaiting in [
            ("会社（株式会社・有限会社・合同会社など）", "industry"),
            ("1", "capital_yen"),
            ("三億円", "tax_arrears"),
            ("はい", None),
        ]:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            turn = json.loads(proc.stdout.readline())
            assert turn["awaiting"] == awaiting
        assert turn["verdict"]["status"] == "ineligible"
        assert {"status", "reasons", "missing", "ruleset", "warnings"} == set(turn["verdict"])
        assert "300,000,000円" in turn["messages"][0]["text"]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


def test_console_starts_afresh_unless_resumed(tmp_path):
    env = {"SUBSIDY_DB": str(tmp_path / "c.db"), "PATH": "", "USER": "staff"}
    cmd = [sys.executable, "-m", "bot.cli", "console", "--date", "2024-06-01"]

    def run(*extra, text=""):
        return subprocess.run(
            cmd + list(extra), input=text, capture_output=True, text=True, encoding="utf-8", env=env
        )

    first = run(text="会社\n製造業\n")
    assert "資本金（または出資の総額）" in first.stdout
    reference = re.search(r"TC-[0-9A-Z]{4}-[0-9A-Z]{2}", first.stdout)
    fresh = run()  # the default: a new conversation, the other one left as it was
    assert "事業者の種類を教えてください" in fresh.stdout and "続きから再開" not in fresh.stdout
    again = run("--resume")  # the last unfinished one: the fresh one, which has no answers yet
    assert "続きから再開します" in again.stdout and "まだ回答はありません" in again.stdout
    by_ref = run("--resume", reference.group(0).lower().replace("-", " "))  # as read out
    assert "続きから再開します" in by_ref.stdout
    assert "・業種: 製造業" in by_ref.stdout  # the answers so far
    assert "資本金（または出資の総額）" in by_ref.stdout and reference.group(0) in by_ref.stdout
    unknown = run("--resume", "TC-2222-22")
    assert unknown.returncode == 1 and "TC-2222-22" in unknown.stderr


@pytest.mark.parametrize(
    "qid, text",
    [
        ("co2_before_t", "1234.5kg"),
        ("co2_before_t", "12.3456t"),
        ("entity_type", "፩"),
        ("entity_type", "9" * 5000),
        ("capital_yen", "9" * 5000),
        ("employees", "٣٠٠人"),
    ],
)
def test_odd_numbers_never_crash_and_are_understood_or_reasked(qid, text):
    s = path_to(qid)
    new, replies = send(s, text)
    assert replies and new.answers.items() >= s.answers.items()
    assert new.last.outcome in ("answer", "reask")
    if qid == "co2_before_t":
        assert new.answers[qid] in ("1.235", "12.346")  # kept to the kilogram


def test_back_while_changing_an_answer_keeps_it():
    s = started()
    for text in ["会社", "製造業"]:
        s = send(s, text)[0]
    s = send(send(s, "/edit entity_type")[0], "戻る")[0]
    assert s.answers == {"entity_type": "company", "industry": "manufacturing"}
    assert s.awaiting == "capital_yen"


def test_a_cancel_after_the_verdict_keeps_the_verdict():
    s = in_phase("verdict")
    new, replies = send(s, "やめる")
    assert new.phase == "verdict" and new.verdict == s.verdict
