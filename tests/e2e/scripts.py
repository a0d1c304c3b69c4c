"""Whole dialogs to each outcome, shared by the channels' end-to-end tests: the same inputs
must bring the same texts and verdicts on Telegram, on LINE and in the console."""

from locales import t

YES, NO = "はい", "いいえ"
BOILER = "ボイラー・工業炉・空調・自家発電設備の更新"
PURCHASE = "購入（自社で所有）"

# (action, input, bot messages expected); the last step gives the summary and the verdict.
BY_BUTTONS = {
    "eligible": [
        ("press", "個人事業主", 1),
        ("press", YES, 1),
        ("press", NO, 1),
        ("press", NO, 1),
        ("press", YES, 1),
        ("press", BOILER, 1),
        ("press", "ボイラー", 1),
        ("press", YES, 1),
        ("press", PURCHASE, 1),
        ("say", "8.0", 1),
        ("say", "6.4", 2),
    ],
    "ineligible": [("press", "医療法人", 1), ("press", YES, 2)],
    "undetermined": [
        ("press", "その他", 1),
        ("press", NO, 1),
        ("press", NO, 1),
        ("press", YES, 1),
        ("press", "コージェネレーション設備の設置", 1),
        ("press", PURCHASE, 2),
    ],
}
BY_TEXT = {
    "eligible": [
        "株式会社です",
        "製造業",
        "３億円",
        "ありません",
        "該当しません",
        "はい",
        "LED",
        "はい",
        "購入",
        "64.1トン",
        "54.1 t-CO2",
    ],
    "ineligible": ["合同会社", "小売業", "5,001万円", "約51名", "このまま"],
    "undetermined": ["NPO法人", "いいえ", "いいえ", "はい", "コージェネレーション", "購入"],
}
TITLES = {status: t(f"verdict.title.{status}", "ja") for status in BY_TEXT}
# Both undetermined scripts are 第2 2 (9) with all else met: nothing left to ask, the prefecture
# decides, and the title says so.
TITLES["undetermined"] = t("verdict.by_prefecture.title", "ja")
