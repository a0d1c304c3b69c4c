"""What an owner takes away: the reference number, the checklist (text and a one-page PDF with
its Japanese font embedded, checked with poppler's pdftotext, pdffonts and pdftoppm) and the
handoff to the prefecture; and the console's new-or-resume and numbered edit list."""

import datetime as dt
import re
import shutil
import subprocess
import sys
import warnings
from functools import partial
from pathlib import Path

import pytest
import yaml
from PIL import Image

import bot.storage as storage_module
from bot.admin import report
from bot.checklist_pdf import checklist_pdf
from bot.delivery import Channel, Delivery, Inbound
from bot.storage import MIGRATIONS, REFERENCE_ALPHABET, Storage, migrate, normalize_reference
from dialogs.checklist import checklist_text
from dialogs.engine import CHECKLIST_KEY, step
from dialogs.io import State, UserInput

ON = dt.date(2024, 6, 1)
ISSUED = dt.date(2026, 11, 29)
REFERENCE = re.compile(f"^TC-[{REFERENCE_ALPHABET}]{{4}}-[{REFERENCE_ALPHABET}]{{2}}$")
SCENARIOS = Path(__file__).parent / "scenarios"
POPPLER = ("pdftotext", "pdffonts", "pdftoppm", "pdfinfo")


def converse(texts, state=None, lang="ja", on=ON):
    state = state or State(lang=lang, reference="TC-7K3M-2Q")
    replies = []
    for text in ["/start", *texts]:
        state, replies = step(state, UserInput(text=text), on=on)
    return state, replies


def said(scenario: str) -> list[str]:
    """The typed answers of a scenario file (its presses become the label typed)."""
    steps = yaml.safe_load((SCENARIOS / scenario).read_text(encoding="utf-8"))["steps"]
    return [str(s.get("say", s.get("press"))) for s in steps if "say" in s or "press" in s]


UNDETERMINED = said("undetermined_skip_co2.yaml")
OUTCOMES = {  # outcome: the answers that reach it
    "eligible": said("eligible_led_by_text.yaml"),
    "ineligible": said("ineligible_size_retail.yaml"),
    "undetermined": UNDETERMINED[: UNDETERMINED.index("この質問を飛ばす") + 1],  # CO2 skipped
}


# --- reference numbers --------------------------------------------------------------------


class Telegram(Channel):
    name = "telegram"


def commit(store, chat, text, stepper=None, user=None):
    """One input through the delivery core's commit (nothing is sent here)."""
    delivery = Delivery(store, Telegram(), stepper or partial(step, on=ON))
    return delivery.commit(Inbound(chat, user or chat, None, None, UserInput(text=text)))


@pytest.fixture
def store(tmp_path):
    with Storage(tmp_path / "bot.db") as s:
        yield s


def references(store) -> list[str]:
    rows = store.db.query("SELECT reference FROM conversations ORDER BY id")
    return [r["reference"] for r in rows]


def test_references_are_short_unambiguous_unique_and_not_a_sequence(store):
    for n in range(60):
        store.start_new("telegram", f"chat{n}", None)
    refs = references(store)
    assert all(REFERENCE.match(r) for r in refs), refs
    assert not set("01OIL") & set("".join(r[3:] for r in refs))
    assert len(set(refs)) == len(refs)
    assert refs != sorted(refs)  # not handed out in order (60! orders; sorted is one)
    column = store.db.execute("PRAGMA index_list(conversations)").fetchall()
    assert any(name == "conversations_reference" and unique for _, name, unique, *_ in column)


def test_a_clash_is_retried_and_a_deleted_conversations_number_never_comes_back(store, monkeypatch):
    commit(store, "c1", "/start", user="u1")
    taken = references(store)[0]
    assert store.delete_user("u1")["conversations"] == 1
    fresh = iter([taken, taken, "TC-2345-67"])
    monkeypatch.setattr(storage_module, "new_reference", lambda: next(fresh))
    store.start_new("telegram", "c2", None)
    assert references(store) == ["TC-2345-67"]


def test_the_number_is_in_the_state_from_the_start_and_kept_when_answers_change(store):
    def send(text):
        return commit(store, "c", text)

    opening = send("/start")
    ref = references(store)[0]
    assert opening.state.reference == ref and ref in opening.replies[0].text
    states = [send(text).state for text in OUTCOMES["eligible"] + ["回答確認", "最初から", "会社"]]
    assert {s.reference for s in states} == {ref}
    assert ref in send("回答確認").replies[0].text


def test_existing_conversations_get_a_number_when_the_database_is_upgraded(tmp_path):
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    old = Database(path)
    ours = next(i for i, m in enumerate(MIGRATIONS) if m.__name__.endswith("references_and_tests"))
    migrate(old, MIGRATIONS[:ours])  # the schema just before this migration
    old["conversations"].insert(
        {
            "channel": "telegram",
            "chat_id": "1",
            "lang": "ja",
            "started_at": "2025-01-01T00:00:00+00:00",
            "updated_at": "2025-01-01T00:00:00+00:00",
            "phase": "asking",
            "state_json": State().model_dump_json(),
        }
    )
    old.conn.commit()
    old.close()
    with Storage(path) as s:
        row = next(s.db.query("SELECT reference, is_test FROM conversations"))
        state = s.current("telegram", "1")[1]
    assert REFERENCE.match(row["reference"]) and row["is_test"] == 0
    assert state.reference == row["reference"]  # in the state as the dialog reads it


@pytest.mark.parametrize(
    "typed, canonical",
    [
        ("TC-7K3M-2Q", "TC-7K3M-2Q"),
        ("tc 7k3m 2q", "TC-7K3M-2Q"),
        ("7K3M2Q", "TC-7K3M-2Q"),
        ("ＴＣ－７Ｋ３Ｍ－２Ｑ", None),  # full-width: not what the bot prints; the admin retypes
        ("TC-7K3M-2O", None),  # O is never used
        ("TC-7K3", None),
        ("12", None),
    ],
)
def test_reference_as_typed_or_read_out(typed, canonical):
    assert normalize_reference(typed) == canonical


# --- the dialog: handoff, numbered edit list ----------------------------------------------


@pytest.mark.parametrize("words", ["県の担当者に相談したい", "相談", "/contact"])
def test_handoff_names_the_office_and_the_number_and_sends_nothing(words):
    state, _ = converse(["医療法人"])
    after, replies = step(state, UserInput(text=words), on=ON)
    text = replies[0].text
    assert "気候変動対策課" in text and "TC-7K3M-2Q" in text and "送ることはありません" in text
    assert "くらし・環境 > 環境 > 気候変動対策" in text
    assert not re.search(r"\d{2,4}-\d{2,4}-\d{3,4}", text)  # no phone number invented
    assert after.awaiting == state.awaiting and after.answers == state.answers
    assert replies[-1].key.startswith("question.")  # and the question again


def test_typing_a_number_in_the_edit_list_edits_and_is_never_an_answer():
    state, _ = converse(["会社", "小売業", "1億円"])  # now asking a number: employees
    assert state.awaiting == "employees"
    state, replies = step(state, UserInput(text="回答確認"), on=ON)
    assert [c.value for c in replies[0].choices][1] == "/edit industry"
    state, replies = step(state, UserInput(text="2"), on=ON)
    assert state.awaiting == "industry" and "employees" not in state.answers
    state, replies = step(state, UserInput(text="1"), on=ON)  # a choice question: 1 selects
    assert state.answers["industry"] == "manufacturing"
    state, _ = converse(["会社", "小売業", "1億円", "2"])  # asked a number: 2 is 2人
    assert state.answers["employees"] == 2


def test_the_verdict_turn_shows_the_reference_number_once():
    _, replies = converse(OUTCOMES["eligible"])
    turn = "\n".join(r.text for r in replies)
    assert turn.count("TC-7K3M-2Q") == 1 and "TC-7K3M-2Q" in replies[-1].text
    state, _ = converse(OUTCOMES["eligible"])
    _, replies = step(state, UserInput(text="回答確認"), on=ON)  # 回答確認 shows it too
    assert "TC-7K3M-2Q" in replies[0].text


def test_the_checklist_is_offered_after_the_verdict_only():
    state, replies = converse(OUTCOMES["eligible"])
    assert "/checklist" in [c.value for c in replies[-1].choices]
    _, replies = step(state, UserInput(text="チェックリスト"), on=ON)
    assert replies[0].key == CHECKLIST_KEY
    early, _ = converse(["会社"])
    _, replies = step(early, UserInput(text="チェックリスト"), on=ON)
    assert replies[0].key == "dialog.not_now"
    assert checklist_text(early, ISSUED) is None and checklist_pdf(early, ISSUED) is None


# --- the checklist ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def poppler():
    missing = [tool for tool in POPPLER if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"install Debian's poppler-utils (see README): {missing} not found")


def pdf_facts(data: bytes, tmp_path: Path) -> dict:
    path = tmp_path / "checklist.pdf"
    path.write_bytes(data)

    def run(*cmd):
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    subprocess.run(["pdftoppm", "-png", "-r", "50", path, tmp_path / "page"], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    return {
        "pages": int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", path)).group(1)),
        "text": run("pdftotext", "-layout", path, "-"),
        "fonts": run("pdffonts", path).splitlines()[2:],
        "images": pages,
    }


def render_checklist(state: State) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a glyph missing from the font would warn
        return checklist_pdf(state, ISSUED)


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_checklist_pdf_for_each_outcome(outcome, poppler, tmp_path):
    state, _ = converse(OUTCOMES[outcome])
    assert state.verdict["status"] == outcome
    facts = pdf_facts(render_checklist(state), tmp_path)
    assert facts["pages"] == 1 and len(facts["images"]) == 1
    assert len(facts["fonts"]) == 1 and "IPAexGothic" in facts["fonts"][0]
    assert facts["fonts"][0].split()[-5:-2] == ["yes", "yes", "yes"]  # embedded, subset, unicode
    with Image.open(facts["images"][0]) as page:
        inked = sum(1 for p in page.convert("L").get_flattened_data() if p < 128)
    assert inked > 2000  # glyphs drawn, not blank boxes (tofu is drawn too, hence the fonts)
    text = re.sub(r"\s+", "", facts["text"])  # pdftotext spaces out the layout
    for needle in [
        "申請準備チェックリスト",
        "受付番号:TC-7K3M-2Q",
        "作成日:2026-11-29",
        state.verdict["ruleset"],
        "県が申請書類を審査して決めます",
        "ご回答の内容",
        *[re.sub(r"\s+", "", r["clause"]) for r in state.verdict["reasons"]],
    ]:
        assert needle in text, needle
    if outcome != "ineligible":
        assert "提出書類の例" in text and "交付申請書" in text and "見積書" in text
    if outcome == "undetermined":
        assert "まだ確認できていない点" in text


def test_the_longest_checklist_still_fits_one_page_with_the_co2_working(poppler, tmp_path):
    """Every size question answered as an estimate, and the CO2 estimated from the lighting
    (dialogs/co2_dialog.py, the public example): its working is on the one page."""
    lighting = said("co2_estimate_lighting.yaml")  # 株式会社 … 購入, then the estimate
    at = lighting.index("わからない")
    opening = ["個人", "いいえ", "製造業", "約300人", "このまま進む", "いいえ", "いいえ", "はい"]
    state, _ = converse([*opening, *lighting[6:]], on=dt.date(2026, 11, 29))
    assert lighting[6:at] == ["LED", "はい", "購入"] and state.verdict["status"] == "eligible"
    facts = pdf_facts(render_checklist(state), tmp_path)
    assert facts["pages"] == 1
    text = re.sub(r"\s+", "", facts["text"])
    for needle in ["CO2削減量の計算", "30,545.92kWh", "11,374.336kWh", "0.000416", "概数"]:
        assert needle in text, needle
    edited, _ = converse(["回答確認", "直す: 更新後のCO2排出量", "5トン"], state=state)
    assert "CO2削減量の計算" not in checklist_text(edited, ISSUED)  # no longer that estimate


def test_checklist_in_english(poppler, tmp_path):
    state, _ = converse(OUTCOMES["eligible"], state=State(lang="en", reference="TC-7K3M-2Q"))
    facts = pdf_facts(render_checklist(state), tmp_path)
    assert facts["pages"] == 1 and "Application checklist" in facts["text"]
    assert "TC-7K3M-2Q" in facts["text"] and "prefecture decides" in facts["text"]


def test_checklist_text_matches_the_pdf_content():
    state, _ = converse(OUTCOMES["ineligible"])
    text = checklist_text(state, ISSUED)
    assert text.startswith("申請準備チェックリスト") and "TC-7K3M-2Q" in text
    assert "× " in text and "別表③" in text and "提出書類の例" not in text
    assert text.rstrip().endswith("県が申請書類を審査して決めます。")


# --- the console --------------------------------------------------------------------------


def test_console_prints_the_checklist_and_writes_the_pdf(poppler, tmp_path):
    env = {"SUBSIDY_DB": str(tmp_path / "c.db"), "PATH": "", "USER": "staff"}
    pdf = tmp_path / "out.pdf"
    answers = "\n".join([*OUTCOMES["eligible"], "チェックリスト"]) + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--date", "2024-06-01", "--pdf", str(pdf)],
        input=answers,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "□ 交付申請書" in done.stdout and str(pdf) in done.stderr
    reference = re.search(r"TC-\w{4}-\w{2}", done.stdout).group(0)
    facts = pdf_facts(pdf.read_bytes(), tmp_path)
    assert facts["pages"] == 1 and reference in facts["text"]
    unfinished = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "--pdf", str(tmp_path / "none.pdf")],
        input="会社\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
    )
    assert unfinished.returncode == 1 and not (tmp_path / "none.pdf").exists()


# --- admin: find by reference, export in words, honest statistics ---------------------------

NOW = dt.datetime.now(dt.UTC)


class SetClock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def admin_db(tmp_path):
    """A refused skip then an accepted one (undetermined, today); one conversation idle for 10
    days at 業種 (abandoned); one idle for a day at 資本金 (in progress); one test run."""
    from bot.console.session import Session

    path, clock = tmp_path / "subsidy.db", SetClock()
    stepper = partial(step, on=ON)
    with Storage(path, clock=clock) as s:

        def talk(chat, texts, days_ago):
            clock.now = NOW - dt.timedelta(days=days_ago)
            for text in ["/start", *texts]:
                commit(s, chat, text, stepper)

        talk("1", ["飛ばす", *OUTCOMES["undetermined"]], 0)
        talk("2", ["会社"], 10)
        talk("3", ["会社", "小売業"], 1)
        clock.now = NOW
        session = Session.new(s, "scenario", "ja", ON, test=True)
        for text in ["/start", *OUTCOMES["eligible"]]:
            session.send(UserInput(text=text))
    return path


def admin(capsys, db, *argv):
    from bot.cli import main

    code = main(["admin", *argv, "--db", str(db)])
    out, err = capsys.readouterr()
    return code, out, err


def funnel_row(out: str, question: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.startswith(question + " "))


def test_stats_count_accepted_skips_abandonment_and_leave_tests_out(admin_db, capsys):
    code, out, _ = admin(capsys, admin_db, "stats")
    assert code == 0 and "会話の数: 3" in out
    assert "離脱 1件・進行中 1件" in out and "7日を超えて" in out
    assert funnel_row(out, "業種")[1:4] == ["2", "1", "1"]  # reached, answered, abandoned here
    assert funnel_row(out, "資本金")[1:4] == ["1", "0", "0"]  # idle a day: still in progress
    reasks = out.split("質問ごとの再質問")[1]
    skipped = report.REASK_COLUMNS.index("skipped")
    assert funnel_row(reasks, "更新前のCO2排出量")[skipped] == "1"  # the accepted skip
    assert not any(line.startswith("事業者の種類 ") for line in reasks.splitlines())  # refused
    _, with_tests, _ = admin(capsys, admin_db, "stats", "--include-tests")
    assert "会話の数: 4" in with_tests and "対象見込み: 1" in with_tests


def test_abandonment_follows_the_setting(admin_db, capsys, monkeypatch):
    monkeypatch.setenv("ABANDON_AFTER_DAYS", "30")
    _, out, _ = admin(capsys, admin_db, "stats")
    assert funnel_row(out, "業種")[1:4] == ["2", "1", "0"] and "離脱 0件・進行中 2件" in out


def test_show_by_reference_number_as_read_out(admin_db, capsys):
    with Storage(admin_db) as s:
        [(cid, ref)] = s.db.execute("SELECT id, reference FROM conversations WHERE chat_id = '2'")
    code, out, _ = admin(capsys, admin_db, "show", ref.lower().replace("-", " "))
    assert code == 0 and f"会話 #{cid}" in out and f"受付番号: {ref}" in out
    assert admin(capsys, admin_db, "show", str(cid))[1] == out
    code, out, err = admin(capsys, admin_db, "show", "TC-2222-22")
    assert code == 1 and not out and err


def test_export_in_japanese_and_raw(admin_db, capsys, tmp_path):
    import csv

    ja, raw = tmp_path / "ja.csv", tmp_path / "raw.csv"
    assert admin(capsys, admin_db, "export", "-o", str(ja), "--include-tests")[0] == 0
    assert admin(capsys, admin_db, "export", "-o", str(raw), "--raw", "--include-tests")[0] == 0
    words = list(csv.DictReader(ja.open(encoding="utf-8-sig", newline="")))
    codes = list(csv.DictReader(raw.open(encoding="utf-8-sig", newline="")))
    assert len(words) == len(codes) == 4
    first, test_run = words[0], words[-1]
    assert first["受付番号"] == codes[0]["reference"] and first["経路"] == "Telegram"
    assert (
        first["事業者の種類"].startswith("医療法人")
        and codes[0]["entity_type"] == "medical_corporation"
    )
    assert first["判定"] == "判定不能" and codes[0]["verdict_status"] == "undetermined"
    assert test_run["県税の滞納"] == "滞納はない" and codes[-1]["tax_arrears"] == "False"
    assert (
        test_run["業種"] == "製造業"
        and test_run["テスト"] == "はい"
        and test_run["経路"] == "コンソール"
    )
    assert test_run["資本金"] == "300000000"  # a number stays a number for the spreadsheet
    assert not any(re.fullmatch(r"[a-z_]+", h) for h in first)  # no field name left
    events = tmp_path / "events.csv"
    assert admin(capsys, admin_db, "export", "--events", "-o", str(events))[0] == 0
    rows = list(csv.DictReader(events.open(encoding="utf-8-sig", newline="")))
    assert {r["発言者"] for r in rows} == {"利用者", "ボット"}
    assert {"飛ばす", "開始"} <= {r["コマンド"] for r in rows} and first["言語"] == "日本語"
    assert "判定不能" in {r["この発言の判定"] for r in rows}


async def test_web_finds_by_reference_and_counts_by_channel(admin_db, tmp_path, monkeypatch):
    from datasette_auth_passwords.utils import hash_password

    from bot.admin import web as admin_web

    monkeypatch.setenv("ADMIN_PASSWORD_HASH", hash_password("x", iterations=1000))
    (tmp_path / "templates").mkdir()
    ds = admin_web.build(admin_db, "ja", tmp_path / "templates")
    c = {"ds_actor": ds.sign({"a": {"id": "admin"}}, "actor")}
    with Storage(admin_db) as s:
        [(cid, ref)] = s.db.execute("SELECT id, reference FROM conversations WHERE chat_id = '3'")

    async def get(query: str) -> list[dict]:
        r = await ds.client.get(f"/subsidy/{query}&_shape=array", cookies=c)
        assert r.status_code == 200, r.text
        return r.json()

    for typed in (ref, ref.lower(), ref.replace("-", "")[2:]):
        [found] = await get(f"by_reference.json?reference={typed}")
        assert (found["番号"], found["受付番号"], found["最後の質問"]) == (cid, ref, "資本金")
    assert await get("by_reference.json?reference=TC-2222-22") == []
    by_channel = await get("outcomes_by_channel.json?tests=")
    assert [(r["経路"], r["会話"]) for r in by_channel] == [("Telegram", 3)]
    by_channel = await get("outcomes_by_channel.json?tests=1")
    assert {(r["経路"], r["会話"], r["対象見込み"]) for r in by_channel} == {
        ("Telegram", 3, 0),
        ("コンソール", 1, 1),
    }


def test_every_command_has_a_label_for_the_export():
    from dialogs.questions import command_words
    from locales import LANGS, has

    missing = [
        (lang, c)
        for c in command_words()
        for lang in LANGS
        if not has(f"takeaway.admin.command.{c}", lang)
    ]
    assert not missing
