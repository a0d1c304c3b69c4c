"""What an owner takes away: the reference number, the checklist (text and a one-page PDF with
its Japanese font embedded, checked with poppler's pdftotext, pdffonts and pdftoppm) and the
handoff to the prefecture; and the console's new-or-resume and numbered edit list."""

import datetime as dt
import json
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
from bot.checklist_pdf import checklist_pdf
from bot.storage import MIGRATIONS, REFERENCE_ALPHABET, Storage, migrate, normalize_reference
from dialogs.checklist import checklist_text
from dialogs.engine import CHECKLIST_KEY, step
from dialogs.io import State, UserInput

ON = dt.date(2024, 6, 1)
ISSUED = dt.date(2026, 11, 29)
REFERENCE = re.compile(f"^TC-[{REFERENCE_ALPHABET}]{{4}}-[{REFERENCE_ALPHABET}]{{2}}$")
SCENARIOS = Path(__file__).parent / "scenarios"
POPPLER = ("pdftotext", "pdffonts", "pdftoppm", "pdfinfo")


def converse(texts, state=None, lang="ja"):
    state = state or State(lang=lang, reference="TC-7K3M-2Q")
    replies = []
    for text in ["/start", *texts]:
        state, replies = step(state, UserInput(text=text), on=ON)
    return state, replies


def said(scenario: str) -> list[str]:
    """The typed answers of a scenario file (its presses become the label typed)."""
    steps = yaml.safe_load((SCENARIOS / scenario).read_text(encoding="utf-8"))["steps"]
    return [str(s.get("say", s.get("press"))) for s in steps if "say" in s or "press" in s]


OUTCOMES = {  # outcome: the answers that reach it
    "eligible": said("eligible_led_by_text.yaml"),
    "ineligible": said("ineligible_size_retail.yaml"),
    "undetermined": said("undetermined_skip_co2.yaml")[:9],  # up to the skipped CO2
}


# --- reference numbers --------------------------------------------------------------------


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
    store.handle("telegram", "c1", "u1", "1", UserInput(text="/start"), step)
    taken = references(store)[0]
    assert store.delete_user("u1")["conversations"] == 1
    fresh = iter([taken, taken, "TC-2345-67"])
    monkeypatch.setattr(storage_module, "new_reference", lambda: next(fresh))
    store.start_new("telegram", "c2", None)
    assert references(store) == ["TC-2345-67"]


def test_the_number_is_in_the_state_from_the_start_and_kept_when_answers_change(store):
    def send(text):
        return store.handle("telegram", "c", "u", None, UserInput(text=text), partial(step, on=ON))

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
    migrate(old, MIGRATIONS[:3])
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
        row = next(s.db.query("SELECT reference, is_test, state_json FROM conversations"))
    assert REFERENCE.match(row["reference"]) and row["is_test"] == 0
    assert json.loads(row["state_json"])["reference"] == row["reference"]


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
        assert "提出書類の例" in text and "様式第1号" in text and "見積書" in text
    if outcome == "undetermined":
        assert "まだ確認できていない点" in text


def test_the_longest_checklist_still_fits_one_page(poppler, tmp_path):
    """Every question answered, as estimates, with a long CO2 working: still one page."""
    state, _ = converse(["個人", "いいえ", "製造業", "約300人", "このまま進む", "いいえ"])
    state, _ = converse(["いいえ", "はい", "ボイラー", "ボイラー", "はい", "購入"], state)
    state, _ = converse(["約100トン", "約50トン"], state)
    assert state.verdict is not None
    working = [f"計算の行 {n}: 灯油 {n} kL × 2.50 = {n * 2.5} t" for n in range(12)]
    state.verdict["co2_estimate"] = working
    facts = pdf_facts(render_checklist(state), tmp_path)
    assert facts["pages"] == 1
    assert "計算の行 11" in facts["text"] and "CO2削減量の計算" in facts["text"]


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
    assert "□ 交付申請書（様式第1号）" in done.stdout and str(pdf) in done.stderr
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
