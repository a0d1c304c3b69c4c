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

from dialogs import co2_dialog
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


def answer(s, a):
    """A sample answer (a button value when it has a colon, else typed); a typed answer read
    back before it is recorded is confirmed."""
    new = send(s, choice=a)[0] if ":" in a else send(s, a)[0]
    return send(new, "そのとおり")[0] if new.phase == "confirming" else new


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
            new = answer(s, a)
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
            new = answer(s, a)
            if new.phase == "asking":
                queue.append(new)
    raise AssertionError(qid)


@pytest.mark.parametrize("qid", list(questions()))
def test_every_validation_fires(qid):
    s = path_to(qid)
    kind = questions()[qid].kind
    estimated = qid in co2_dialog.FIELDS and co2_dialog.kind_for(s.answers)
    cases = [
        ("たくさん", "reask", "すみません"),
        ("", "reask", "すみません"),
        # at a CO2 question, "don't know" opens the estimate for the equipment already known
        ("わからない", "help", "トン数が分からなくても" if estimated else "分からない場合のご案内"),
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
    if phase in ("verdict", "confirming"):
        s = send(s, "/edit industry")[0]
        s = send(send(s, "製造業")[0], "1億円")[0]
        s = send(s, "はい")[0]  # tax arrears: read back before it is recorded
        assert s.phase == "confirming" and s.confirming == {
            **s.confirming,
            "field": "tax_arrears",
            "value": True,
        }
    if phase == "verdict":
        s = send(s, "そのとおり")[0]  # confirmed: ineligible at once
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
                    "そのとおり",
                    "違う",
                    "/confirm",
                    "/deny",
                    "県外です",
                    "リースです",
                    "はい、県内です",
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
        assert opening["answers"] == {} and opening["confirming"] is None
        for line, awaiting, confirming in [
            ("会社（株式会社・有限会社・合同会社など）", "industry", None),
            ("1", "capital_yen", None),
            ("三億円", "tax_arrears", None),
            ("はい", "tax_arrears", {"field": "tax_arrears", "value": True}),
            ("そのとおり", None, None),
        ]:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            turn = json.loads(proc.stdout.readline())
            assert turn["awaiting"] == awaiting and turn["confirming"] == confirming
            if confirming:  # read back, not yet recorded
                assert "tax_arrears" not in turn["answers"]
        assert turn["answers"] == {
            "entity_type": "company",
            "industry": "manufacturing",
            "capital_yen": 300000000,
            "tax_arrears": True,
        }
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


def test_console_leaving_a_finished_conversation_names_the_number_that_reopens_it(tmp_path):
    env = {"SUBSIDY_DB": str(tmp_path / "c.db"), "PATH": "", "USER": "staff"}
    cmd = [sys.executable, "-m", "bot.cli", "console", "--date", "2024-06-01"]

    def run(*extra, text=""):
        return subprocess.run(
            cmd + list(extra), input=text, capture_output=True, text=True, encoding="utf-8", env=env
        )

    unfinished = run(text="会社\n")
    assert unfinished.stdout.rstrip().endswith("subsidy-bot console --resume で再開できます。")
    done = run(text="医療法人\nいいえ\nいいえ\nはい\nコージェネ\n購入\n")
    reference = re.search(r"TC-[0-9A-Z]{4}-[0-9A-Z]{2}", done.stdout).group(0)
    assert "補助対象となる見込み" in done.stdout
    assert done.stdout.rstrip().endswith(f"--resume {reference} で開き直せます。")
    assert "判定は上のとおり" in run("--resume", reference).stdout  # which it does


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


# --- issue 9: typed answers read back, several answers per message, bounds, repairs -----------
from dialogs import engine  # noqa: E402
from dialogs.understanding import Reading  # noqa: E402


def reading_for(monkeypatch, text, reading):
    """Let the reader say `reading` for `text` (the dialog's handling is tested, not the
    reader's); any other text is read as usual."""
    real = engine.understand

    def fake(qid, typed, answers, lang):
        return reading if typed == text else real(qid, typed, answers, lang)

    monkeypatch.setattr(engine, "understand", fake)


def at(qid, *texts):
    """A state awaiting `qid`, reached by typed answers (read-backs confirmed)."""
    s = started()
    for text in texts:
        s = answer(s, text)
    assert s.awaiting == qid, (s.awaiting, qid)
    return s


DISQUALIFYING = [  # (question, path to it, typed, the reading read back)
    ("tax_arrears", ["医療法人"], "はい", True),
    ("antisocial_forces", ["医療法人", "いいえ"], "当たります", True),
    ("site_in_tochigi", ["医療法人", "いいえ", "いいえ"], "県外です", False),
    ("project_type", ["医療法人", "いいえ", "いいえ", "はい"], "設備更新", None),
    ("equipment", ["医療法人", "いいえ", "いいえ", "はい", "設備更新"], "その他", "other"),
    ("replaces_existing", ["医療法人", "いいえ", "いいえ", "はい", "LED"], "新設", False),
    ("delivery", ["医療法人", "いいえ", "いいえ", "はい", "コージェネ"], "リース", "lease"),
    ("delivery", ["医療法人", "いいえ", "いいえ", "はい", "コージェネ"], "ESCO", "esco"),
]


@pytest.mark.parametrize("qid, path, typed, value", [d for d in DISQUALIFYING if d[3] is not None])
def test_a_disqualifying_typed_answer_is_read_back_then_recorded_or_asked_again(
    qid, path, typed, value
):
    s = at(qid, *path)
    reading_back, replies = send(s, typed)
    assert reading_back.phase == "confirming" and reading_back.awaiting == qid
    assert reading_back.confirming["field"] == qid and reading_back.confirming["value"] == value
    assert qid not in reading_back.answers and reading_back.last.outcome == "confirm"
    assert "補助の対象外" in replies[-1].text
    assert [c.label for c in replies[-1].choices] == ["そのとおり", "違う"]
    for yes in ("そのとおり", "はい", "そうです"):
        done = send(reading_back, yes)[0]
        assert done.phase == "verdict" and done.verdict["status"] == "ineligible", yes
        assert done.answers[qid] == value and done.last.outcome == "answer"
    for no in ("違う", "いいえ", "違います", "そうではありません"):
        again, replies = send(reading_back, no)
        assert again.phase == "asking" and again.awaiting == qid and again.confirming is None, no
        assert again.answers == s.answers and again.last.outcome == "reask"
        assert "記録はしていません" in replies[-1].text


def test_a_pressed_disqualifying_button_is_recorded_at_once():
    s = at("tax_arrears", "医療法人")
    done = send(s, choice="tax_arrears:true")[0]
    assert done.phase == "verdict" and done.answers["tax_arrears"] is True


def test_an_answer_that_does_not_disqualify_is_recorded_at_once():
    s = at("tax_arrears", "医療法人")
    new = send(s, "いいえ")[0]
    assert new.phase == "asking" and new.answers["tax_arrears"] is False


def test_an_unsure_reading_is_read_back_even_when_harmless(monkeypatch):
    s = at("tax_arrears", "医療法人")
    reading_for(monkeypatch, "はい、ありません", Reading("value", False, sure=False))
    new, replies = send(s, "はい、ありません")
    assert new.confirming == {**new.confirming, "field": "tax_arrears", "value": False}
    assert "補助の対象外" not in replies[-1].text
    assert send(new, "はい")[0].answers["tax_arrears"] is False


def test_commands_work_during_a_read_back():
    s = send(at("tax_arrears", "医療法人"), "はい")[0]
    for command, phase in [
        ("ヘルプ", "confirming"),
        ("なぜ？", "confirming"),
        ("回答確認", "confirming"),
    ]:
        new, replies = send(s, command)
        assert new.phase == phase and new.confirming == s.confirming, command
    shown = send(send(s, "回答確認")[0], "続ける")[1]
    assert [c.label for c in shown[-1].choices] == ["そのとおり", "違う"]  # the read-back again
    back = send(s, "戻る")[0]
    assert back.awaiting == "entity_type" and back.confirming is None and back.answers == {}
    stopped = send(s, "やめる")[0]
    assert stopped.phase == "cancelled" and stopped.confirming is None
    assert stopped.answers == s.answers
    assert send(s, "/keep")[0].last.outcome == "ignored"


def test_typing_a_new_answer_during_a_read_back_replaces_the_reading():
    s = send(at("tax_arrears", "医療法人"), "はい")[0]
    new = send(s, "完納しています")[0]  # neither yes nor no: an answer to the question
    assert new.phase == "asking" and new.answers["tax_arrears"] is False
    assert new.confirming is None and new.awaiting == "antisocial_forces"
    corrected = send(s, "滞納はありません")[0]  # the answer itself, not a bare "no"
    assert corrected.answers["tax_arrears"] is False and corrected.confirming is None
    again = send(s, "滞納があります")[0]  # the same reading again: that's a yes
    assert again.answers["tax_arrears"] is True and again.phase == "verdict"


def test_a_reply_to_a_read_back_that_answers_the_question_is_that_answer():
    s = send(at("site_in_tochigi", "学校法人", "いいえ", "いいえ"), "県外です")[0]
    assert s.confirming["value"] is False
    new = send(s, "県内にあります")[0]  # "there is one" is not a yes to "outside"
    assert new.answers["site_in_tochigi"] is True and new.awaiting == "project_type"
    unclear, replies = send(s, "はい、県内です")  # a yes and another answer: the buttons decide
    assert unclear.confirming == s.confirming and "site_in_tochigi" not in unclear.answers
    assert [c.label for c in replies[-1].choices] == ["そのとおり", "違う"]
    denied = send(s, "いいえ、ちょっと待って")[0]
    assert "site_in_tochigi" not in denied.answers and denied.confirming is None
    tax = send(at("tax_arrears", "医療法人"), "滞納があります")[0]
    assert send(tax, "はい、お願いします")[0].answers["tax_arrears"] is True


def test_an_old_question_button_during_a_read_back_leaves_it_standing():
    s = send(at("tax_arrears", "医療法人"), "はい")[0]
    new, replies = send(s, choice="entity_type:company")
    assert new.confirming == s.confirming and new.phase == "confirming"
    assert new.answers == s.answers and new.last.outcome == "ignored"
    assert [c.label for c in replies[-1].choices] == ["そのとおり", "違う"]


def test_a_read_back_button_pressed_later_changes_nothing():
    s = at("antisocial_forces", "医療法人", "いいえ")
    new, replies = send(s, choice="/confirm")
    assert new.last.outcome == "ignored" and new.answers == s.answers


def test_several_answers_in_one_message_fill_each_open_question(monkeypatch):
    s = at("project_type", "医療法人", "いいえ", "いいえ", "はい")
    message = "事務所のエアコンを買い替えます"
    also = (("equipment", "air_conditioning"), ("replaces_existing", True))
    reading_for(monkeypatch, message, Reading("value", "equipment_replacement", also=also))
    new, replies = send(s, message)
    assert new.answers["project_type"] == "equipment_replacement"
    assert new.answers["equipment"] == "air_conditioning"
    assert new.answers["replaces_existing"] is True
    assert new.awaiting == "delivery"  # neither filled question is asked again
    for shown in ("ボイラー・工業炉・空調・自家発電設備の更新", "空調設備", "既設の更新"):
        assert shown in replies[-1].text
    assert "（質問 6／" in replies[-1].text  # the filled questions were not asked


def test_an_answer_from_the_same_message_that_is_not_open_is_not_filled(monkeypatch):
    s = at("project_type", "医療法人", "いいえ", "いいえ", "はい")
    also = (("equipment", "boiler"), ("tax_arrears", True), ("co2_before_t", "5"))
    reading_for(monkeypatch, "コージェネ", Reading("value", "cogeneration", also=also))
    new = send(s, "コージェネ")[0]
    # cogeneration has no equipment or CO2 question; tax arrears was already answered
    assert new.answers == s.answers | {"project_type": "cogeneration"}


def test_a_disqualifying_answer_among_several_is_read_back(monkeypatch):
    s = at("project_type", "医療法人", "いいえ", "いいえ", "はい")
    also = (("equipment", "air_conditioning"), ("replaces_existing", False))
    reading_for(
        monkeypatch,
        "エアコンを新しく付けます",
        Reading("value", "equipment_replacement", also=also),
    )
    new, replies = send(s, "エアコンを新しく付けます")
    assert new.answers["equipment"] == "air_conditioning"  # harmless: recorded
    assert new.confirming == {**new.confirming, "field": "replaces_existing", "value": False}
    assert new.awaiting == "replaces_existing" and "replaces_existing" not in new.answers
    assert "空調設備" in replies[-1].text and "補助の対象外" in replies[-1].text
    assert send(new, "そのとおり")[0].verdict["status"] == "ineligible"
    denied = send(new, "違う")[0]
    assert denied.awaiting == "replaces_existing" and "replaces_existing" not in denied.answers


def test_answers_waiting_behind_a_read_back_follow_its_confirmation(monkeypatch):
    s = at("project_type", "医療法人", "いいえ", "いいえ", "はい")
    also = (("equipment", "boiler"), ("replaces_existing", True))
    unsure = Reading("value", "equipment_replacement", sure=False, also=also)
    reading_for(monkeypatch, "ボイラーかな", unsure)
    new = send(s, "ボイラーかな")[0]
    assert new.confirming["field"] == "project_type" and "equipment" not in new.answers
    done = send(new, "そのとおり")[0]
    assert done.answers["equipment"] == "boiler" and done.answers["replaces_existing"] is True
    assert done.awaiting == "delivery"
    assert send(new, "違う")[0].answers == s.answers  # denied: none of them recorded


def test_a_question_back_gets_help_and_records_nothing(monkeypatch):
    s = at("blue_return", "個人事業主")
    reading_for(monkeypatch, "青色申告って何？", Reading("ask_back"))
    new, replies = send(s, "青色申告って何？")
    assert new.answers == s.answers and new.awaiting == "blue_return"
    assert "青色申告承認申請書" in replies[-1].text and new.last.outcome == "help"


def test_a_hedge_alone_is_asked_again_gently_keeping_every_answer(monkeypatch):
    s = at("employees", "会社", "小売業", "1億円")
    reading_for(monkeypatch, "うーん", Reading("hedge"))
    new, replies = send(s, "うーん")
    assert new.answers == s.answers and new.awaiting == "employees"
    assert "ゆっくりで大丈夫" in replies[-1].text and new.last.outcome == "reask"


def test_an_ambiguous_answer_offers_its_candidates(monkeypatch):
    s = at("employees", "会社", "小売業", "1億円")
    note = ("question.employees.unknown", {})
    reading_for(
        monkeypatch, "正社員30名とパート20名", Reading("ambiguous", candidates=(30, 50), note=note)
    )
    new, replies = send(s, "正社員30名とパート20名")
    assert new.answers == s.answers and new.last.outcome == "reask"
    assert [c.label for c in replies[-1].choices][:2] == ["30人", "50人"]
    assert "労働基準法" in replies[-1].text  # the note explains which count is meant
    assert send(new, "50人")[0].answers["employees"] == 50  # typed label: that candidate
    assert send(new, choice="employees:30")[0].answers["employees"] == 30


def test_a_bound_is_used_only_where_it_settles_the_question(monkeypatch):
    s = at("employees", "会社", "小売業", "1億円")  # retail: at most 50 people
    reading_for(monkeypatch, "500人を超えています", Reading("bound", bound=(">", 500)))
    new, replies = send(s, "500人を超えています")
    assert new.answers["employees"] == 501 and new.bounds == {"employees": [">", 500]}
    assert new.verdict["status"] == "ineligible" and "500人を超える" in replies[0].text
    assert "「500人を超える」とのご回答のため、501人として確認しました" in replies[-1].text
    assert "概数でのご回答" not in replies[-1].text  # a bound is no estimate
    reading_for(monkeypatch, "10人より多い", Reading("bound", bound=(">", 10)))
    unsettled, replies = send(s, "10人より多い")
    assert "employees" not in unsettled.answers and unsettled.awaiting == "employees"
    assert "数字で教えてください" in replies[-1].text


def test_a_note_is_shown_in_the_echo(monkeypatch):
    s = at("industry", "会社")
    note = ("question.industry.why", {})
    reading_for(monkeypatch, "美容室", Reading("value", "services", note=note))
    replies = send(s, "美容室")[1]
    assert "「サービス業」" in replies[-1].text and "別表" in replies[-1].text


def test_a_second_dont_know_gets_a_short_reply_with_the_skip_button():
    s = at("capital_yen", "会社", "小売業")
    first, replies = send(s, "わからない")
    assert "登記事項証明書" in replies[-1].text
    second, replies = send(first, "わからない")
    assert "登記事項証明書" not in replies[-1].text and "飛ばして" in replies[-1].text
    assert "この質問を飛ばす" in [c.label for c in replies[-1].choices]
    assert second.last.outcome == "help" and second.answers == s.answers


def test_cancel_keeps_the_answers_and_continue_summary_back_work():
    s = at("tax_arrears", "会社", "小売業", "1億円", "30人")
    stopped, replies = send(s, "やめる")
    assert stopped.phase == "cancelled" and stopped.answers == s.answers
    assert [c.label for c in replies[-1].choices] == ["続ける", "回答確認", "最初から"]
    resumed = send(stopped, "続ける")[0]
    assert resumed.phase == "asking" and resumed.awaiting == "tax_arrears"
    assert resumed.answers == s.answers
    summary = send(stopped, "回答確認")[1]
    assert "100,000,000円" in summary[-1].text
    back = send(stopped, "戻る")[0]
    assert back.awaiting == "employees" and "employees" not in back.answers
    offer = send(stopped, "/start")[1]
    assert [c.label for c in offer[-1].choices] == ["続ける", "最初から"]


def test_cancel_at_the_start_then_start_begins():
    stopped = send(started(), "やめる")[0]
    assert send(stopped, "/start")[0].awaiting == "entity_type"


def progress(replies):
    n, left = re.search(r"質問 (\d+)／残り最大 (\d+)問", replies[-1].text).groups()
    return int(n), int(left)


def test_the_progress_line_counts_questions_asked_and_the_longest_way_left():
    s, replies = send(State(), "/start")
    assert progress(replies) == (1, 13)  # a company doing an LED or equipment project
    s, replies = send(s, "医療法人")
    assert progress(replies) == (2, 9)  # no size questions for a medical corporation
    s, replies = send(s, "いいえ")
    s, replies = send(s, "いいえ")
    s, replies = send(s, "はい")
    s, replies = send(s, "コージェネ")
    assert s.awaiting == "delivery" and progress(replies) == (6, 1)  # no CO2 for cogeneration
    s = at(
        "co2_before_t", "会社", "製造業", "1億円", "いいえ", "いいえ", "はい", "LED", "はい", "購入"
    )
    s, replies = send(s, "飛ばす")  # skipping the figure before skips the one after
    assert s.phase == "verdict"
    s = at("capital_yen", "会社", "小売業")
    s, replies = send(s, "飛ばす")
    assert s.awaiting == "employees" and progress(replies) == (4, 10)  # capital was asked


def test_every_way_through_keeps_the_progress_line_true():
    """Along every explored path the count goes up by one per question asked, and the
    questions still asked never exceed what the line promised."""
    queue = deque([(send(State(), "/start"), 0)])
    checked = 0
    while queue and checked < 300:
        (s, replies), depth = queue.popleft()
        n, left = progress(replies)
        assert n == depth + 1
        q = questions()[s.awaiting]
        answers = [f"{q.id}:{v}" for v in q.choices] if q.kind == "choice" else SAMPLES[q.kind]
        for a in answers[:3]:
            new, out = send(s, choice=a) if ":" in a else send(s, a)
            if new.phase == "confirming":
                new, out = send(new, "そのとおり")
            checked += 1
            if (
                new.phase == "asking"
                and new.awaiting != s.awaiting
                and new.last.outcome == "answer"
            ):
                assert progress(out)[1] <= left - 1, (s.answers, new.awaiting)
                queue.append(((new, out), depth + 1))
