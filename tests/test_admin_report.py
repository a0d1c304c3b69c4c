"""Admin reports over a database filled by real dialogs (engine + storage), and the functions the
Telegram adapter calls. `populate` is shared with the other test_admin_* files."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from functools import partial

import pytest
from test_storage import Named

from bot.admin import report
from bot.delivery import Delivery, Inbound
from bot.storage import Storage
from dialogs.engine import step
from dialogs.io import UserInput
from locales import t

ELIGIBLE = [
    "/start",
    "株式会社",
    "製造業",
    "3億円",
    "いいえ",
    "いいえ",
    "はい",
    "LED",
    "はい",
    "購入",
    "30トン",
    "10トン",
]
TAX_ARREARS = ["/start", "株式会社", "製造業", "3億円", "はい", "そのとおり"]
STOPS_AT_CAPITAL = ["/start", "会社", "小売業"]
REASKS_THEN_CANCEL = [
    "/start",
    "ラーメン",
    "株式会社",
    "製造業",
    "たくさん",
    "3億円",
    "多分",
    "いいえ",
    "分からない",
    "いいえ",
    "やめる",
]
SKIPS_CO2 = [*ELIGIBLE[:10], "分からない", "飛ばす"]  # -> undetermined (after is skipped too)
# (channel, chat, user, first input at (UTC), texts). Japan time is UTC+9, so conversation 3
# starts on 2025-04-02 in Japan although it is still 04-01 in UTC.
SCRIPTS = [
    ("telegram", 1001, 101, datetime(2025, 4, 1, 0, 0, tzinfo=UTC), ELIGIBLE),
    ("telegram", 1002, 102, datetime(2025, 4, 1, 1, 0, tzinfo=UTC), TAX_ARREARS),
    ("console", "staff-1", None, datetime(2025, 4, 1, 16, 0, tzinfo=UTC), STOPS_AT_CAPITAL),
    ("telegram", 1004, 104, datetime(2025, 4, 3, 1, 0, tzinfo=UTC), REASKS_THEN_CANCEL),
    ("telegram", 1005, 105, datetime(2025, 4, 3, 2, 0, tzinfo=UTC), SKIPS_CO2),
]


class Clock:
    """Set `now` to jump to a day; every reading moves one second on."""

    def __init__(self) -> None:
        self.now = datetime(2025, 4, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def populate(path) -> None:
    clock = Clock()
    stepper = partial(step, on=date(2025, 4, 1))
    with Storage(path, clock=clock) as storage:
        for channel, chat, user, start, texts in SCRIPTS:
            clock.now = start
            delivery = Delivery(storage, Named(channel), stepper)
            for i, text in enumerate(texts):
                delivery.commit(Inbound(chat, user, f"{chat}-{i}", None, UserInput(text=text)))


@pytest.fixture
def storage(filled_db, tmp_path):
    path = tmp_path / "subsidy.db"
    shutil.copy(filled_db, path)
    with Storage(path) as s:
        yield s


@pytest.fixture
def empty_storage(tmp_path):
    with Storage(tmp_path / "empty.db") as s:
        yield s


def rows(text: str) -> list[list[str]]:
    """A printed table as cells (wide-character padding removed)."""
    return [line.split() for line in text.splitlines()]


# --- numbers --------------------------------------------------------------------------------

FUNNEL = {  # question: (reached, answered, stopped)
    "entity_type": (5, 5, 0),
    "blue_return": (0, 0, 0),
    "industry": (5, 5, 0),
    "capital_yen": (5, 4, 1),
    "employees": (0, 0, 0),
    "tax_arrears": (4, 4, 0),
    "antisocial_forces": (3, 3, 0),
    "site_in_tochigi": (3, 2, 1),
    "project_type": (2, 2, 0),
    "equipment": (0, 0, 0),
    "replaces_existing": (2, 2, 0),
    "delivery": (2, 2, 0),
    "co2_before_t": (2, 1, 0),
    "co2_after_t": (1, 1, 0),
}


def test_funnel_counts_in_asking_order(storage):
    got = report.per_question(storage.db)
    assert [r["question"] for r in got] == list(FUNNEL)
    assert {r["question"]: (r["reached"], r["answered"], r["stopped"]) for r in got} == FUNNEL
    columns = report.REASK_COLUMNS[1:]  # re-asks, conversations, unknown, read-backs, skipped
    reasks = {
        r["question"]: tuple(r[c] for c in columns) for r in got if any(r[c] for c in columns)
    }
    assert reasks == {
        "entity_type": (1, 1, 0, 0, 0),
        "capital_yen": (1, 1, 0, 0, 0),
        "tax_arrears": (1, 1, 0, 1, 0),  # the typed "yes, in arrears" was read back
        "antisocial_forces": (0, 0, 1, 0, 0),
        "co2_before_t": (0, 0, 1, 0, 1),
    }


def test_days_are_japan_days(storage):
    assert report.by_day(storage.db) == [
        {
            "day": "2025-04-01",
            "total": 2,
            "eligible": 1,
            "ineligible": 1,
            "undetermined": 0,
            "none": 0,
        },
        {
            "day": "2025-04-02",
            "total": 1,
            "eligible": 0,
            "ineligible": 0,
            "undetermined": 0,
            "none": 1,
        },
        {
            "day": "2025-04-03",
            "total": 2,
            "eligible": 0,
            "ineligible": 0,
            "undetermined": 1,
            "none": 1,
        },
    ]


@pytest.mark.parametrize(
    "filters, ids",
    [
        (report.Filters(), [5, 4, 3, 2, 1]),
        (report.Filters(limit=2), [5, 4]),
        (report.Filters(outcome="none"), [4, 3]),
        (report.Filters(outcome="eligible"), [1]),
        (report.Filters(outcome="undetermined"), [5]),
        (report.Filters(channel="console"), [3]),
        (report.Filters(since="2025-04-02"), [5, 4, 3]),
        (report.Filters(until="2025-04-01"), [2, 1]),
        (report.Filters(since="2025-04-02", until="2025-04-02"), [3]),
    ],
)
def test_filters(storage, filters, ids):
    assert [r["id"] for r in report.conversations(storage.db, filters)] == ids


def test_filters_apply_to_the_funnel(storage):
    console = {
        r["question"]: r["stopped"]
        for r in report.per_question(storage.db, report.Filters(channel="console"))
    }
    assert console["capital_yen"] == 1 and sum(console.values()) == 1


def test_last_question_survives_a_cancel(storage):
    last = {r["id"]: (r["status"], r["last_question"]) for r in report.conversations(storage.db)}
    assert last == {
        1: ("finished", "co2_after_t"),
        2: ("finished", "tax_arrears"),
        3: ("active", "capital_yen"),
        4: ("cancelled", "site_in_tochigi"),
        5: ("finished", "co2_before_t"),
    }


def test_display_sql_shows_the_same_words_as_the_text(storage):
    """The web view's wrapper and the Python formatting use one set of labels."""
    sql = report.display_sql(report.CONVERSATIONS_SQL, report.LIST_COLUMNS, "ja", 'ORDER BY "id"')
    web = list(storage.db.query(sql, report.Filters().params()))
    py = [
        [report.shown(c, r[c], "ja") for c in report.LIST_COLUMNS]
        for r in reversed(report.conversations(storage.db))
    ]
    assert [[str(v) for v in w.values()] for w in web] == py
    assert list(web[0]) == [
        "番号",
        "受付番号",
        "開始",
        "最終更新",
        "経路",
        "状態",
        "判定",
        "最後の質問",
    ]
    assert web[3]["状態"] == "中断" and web[3]["最後の質問"] == "県内の事業所"
    assert web[4]["判定"] == "判定不能"


# --- texts for Telegram (and the CLI, which prints the same) -------------------------------


def test_recent_text(storage):
    text = report.recent_text(storage, "ja", limit=4)
    table = rows(text)
    assert all(re.fullmatch(r"TC-\w{4}-\w{2}", r.pop(1)) for r in table[2:])  # random
    assert table[1].pop(1) == "受付番号"
    assert table == [
        ["会話", "4件（新しい順、時刻は日本時間）"],
        ["番号", "開始", "最終更新", "経路", "状態", "判定", "最後の質問"],
        [
            "5",
            "2025-04-03",
            "11:00:01",
            "2025-04-03",
            "11:00:13",
            "Telegram",
            "判定済み",
            "判定不能",
            "更新前のCO2排出量",
        ],
        [
            "4",
            "2025-04-03",
            "10:00:01",
            "2025-04-03",
            "10:00:12",
            "Telegram",
            "中断",
            "判定なし",
            "県内の事業所",
        ],
        [
            "3",
            "2025-04-02",
            "01:00:01",
            "2025-04-02",
            "01:00:04",
            "コンソール",
            "進行中",
            "判定なし",
            "資本金",
        ],
        [
            "2",
            "2025-04-01",
            "10:00:01",
            "2025-04-01",
            "10:00:07",
            "Telegram",
            "判定済み",
            "対象外",
            "県税の滞納",
        ],
    ]


def test_stats_text(storage):
    text = report.stats_text(storage, "ja")
    lines = rows(text)
    assert lines[:5] == [
        ["会話の数:", "5"],
        ["対象見込み:", "1"],
        ["対象外:", "1"],
        ["判定不能:", "1"],
        ["判定なし:", "2"],
    ]
    assert ["2025-04-02", "1", "0", "0", "0", "1"] in lines
    labels = report.labels("question", "ja")
    for q, counts in FUNNEL.items():
        assert [labels[q], *map(str, counts)] in lines
    # re-asks table: re-asks, conversations with re-asks, "I don't know", read-backs, skipped
    assert ["資本金", "1", "1", "0", "0", "0"] in lines
    assert ["暴力団等への該当", "0", "0", "1", "0", "0"] in lines
    assert ["更新前のCO2排出量", "0", "0", "1", "0", "1"] in lines
    assert ["県税の滞納", "1", "1", "0", "1", "0"] in lines
    assert ["業種", "0", "0", "0", "0", "0"] not in lines  # questions never re-asked are left out


def test_show_text(storage):
    text = report.show_text(storage, 4, "ja")
    assert text.splitlines()[0] == "会話 #4（Telegram、チャット 1004、利用者 104）"
    assert "開始 2025-04-03 10:00:01" in text and "状態: 中断" in text
    assert "2025-04-03 10:00:03 利用者: ラーメン  〔再質問 事業者の種類〕" in text
    assert "利用者: 3億円  〔回答 資本金: 300,000,000円（3億円）〕" in text
    assert "利用者: 分からない  〔分からない 暴力団等への該当〕" in text
    assert "利用者: やめる  〔コマンド /cancel〕" in text
    assert text.rstrip().endswith("判定: まだ出ていません")
    inputs = [line for line in text.splitlines() if " 利用者: " in line]
    assert [line.split(" 利用者: ")[1].split("  ")[0] for line in inputs] == REASKS_THEN_CANCEL


def test_show_text_verdict_with_reasons(storage):
    text = report.show_text(storage, 2, "ja")
    assert "判定: 対象外（要領 tochigi-datsutanso-2024-04-01）" in text
    assert "× 県税の滞納がある場合は、補助の対象になりません。（第3 1）" in text
    assert "○ 資本金 300,000,000円は" in text
    assert "ボット: 【判定】補助対象外となります" in text
    full = report.transcript_report(storage.db, 1, "ja", full=True)
    assert "    ・年間 20トンの削減（30トン → 10トン、66.6%減）" in full  # whole bot message


def test_show_text_undetermined_after_a_skip(storage):
    text = report.show_text(storage, 5, "ja")
    assert "利用者: 飛ばす  〔コマンド /skip〕" in text
    assert "判定: 判定不能（要領 tochigi-datsutanso-2024-04-01）" in text
    assert "？ CO2削減量の確認がまだです" in text
    assert "未回答: 更新前のCO2排出量" in text


def test_show_text_unknown_id(storage):
    assert report.show_text(storage, 99, "ja") is None


def test_empty_database(empty_storage):
    assert report.recent_text(empty_storage, "ja") == "該当する会話はありません。"
    assert report.stats_text(empty_storage, "ja") == "該当する会話はありません。"
    assert report.show_text(empty_storage, 1, "ja") is None
    assert all(r["reached"] == r["stopped"] == 0 for r in report.per_question(empty_storage.db))


@pytest.mark.parametrize("arg", ["", "abc", "²", "０", "-1", "0"])
def test_chat_show_without_a_usable_number_asks_for_one(storage, arg):
    assert report.chat_report(storage, "show", arg, "ja") is None


def test_chat_commands_answer_for_any_channel(storage):
    assert report.chat_report(storage, "stats", "", "ja") == report.stats_text(storage, "ja")
    assert report.chat_report(storage, "recent", "²", "ja") == report.recent_text(storage, "ja")
    for huge in ("#999999", "99999999999999999999999"):
        assert report.chat_report(storage, "show", huge, "ja") == t(
            "admin.show.not_found", "ja", id=int(huge.lstrip("#"))
        )
