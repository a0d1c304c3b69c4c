"""Rendering dialog replies for Telegram: escaping, splitting, keyboards."""

from __future__ import annotations

import logging
import re

from hypothesis import given
from hypothesis import strategies as st

from bot.telegram.render import (
    MAX_MESSAGE,
    escape,
    keyboard,
    messages,
    preformatted,
    split_text,
)
from dialogs.io import Choice, Reply


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def labels(markup) -> list[list[str]]:
    return [[b.text for b in row] for row in markup.inline_keyboard]


# --- escaping -----------------------------------------------------------------------------


def test_escape_leaves_no_markup():
    assert escape("<b>1 & 2</b> > 0") == "&lt;b&gt;1 &amp; 2&lt;/b&gt; &gt; 0"
    assert escape('「資本金」は "3億円"') == '「資本金」は "3億円"'  # quotes are fine in text


def test_every_message_is_escaped_html():
    [out] = messages([Reply(key="k", text="<i>株式会社 & Co</i>")])
    assert out.html == "&lt;i&gt;株式会社 &amp; Co&lt;/i&gt;"


# --- splitting ----------------------------------------------------------------------------


def test_short_text_is_one_chunk():
    assert split_text("一行目\n二行目") == ["一行目\n二行目"]


def test_split_on_line_boundaries():
    text = "\n".join(["あ" * 9] * 5)  # 5 lines of 9: two fit in 19 units with their newline
    chunks = split_text(text, limit=20)
    assert chunks == ["あ" * 9 + "\n" + "あ" * 9] * 2 + ["あ" * 9]


def test_exactly_at_the_limit_is_not_split():
    text = "a" * 4000 + "\n" + "b" * 95  # 4096 units
    assert split_text(text) == [text]
    assert len(split_text(text + "b")) == 2


def test_a_line_longer_than_the_limit_is_cut_between_characters():
    line = "x" * 25
    assert split_text(f"head\n{line}\ntail", limit=10) == [
        "head",
        "x" * 10,
        "x" * 10,
        "x" * 5 + "\ntail",
    ]


def test_surrogate_pairs_count_double_and_stay_whole():
    text = "😀" * 7  # 14 UTF-16 units
    chunks = split_text(text, limit=5)
    assert chunks == ["😀😀", "😀😀", "😀😀", "😀"]
    assert all(units(c) <= 5 for c in chunks)


def test_blank_chunks_are_dropped():
    assert split_text("") == []
    assert split_text("a\n\n\n\nb", limit=1) == ["a", "b"]


@given(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=300),
    st.integers(min_value=2, max_value=40),
)
def test_split_keeps_everything_in_order_within_the_limit(text, limit):
    chunks = split_text(text, limit)
    assert all(units(c) <= limit and c.strip() for c in chunks)
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)


def test_a_long_reply_becomes_several_messages_and_the_keyboard_goes_last():
    text = "\n".join(f"{n:04d} " + "長" * 60 for n in range(200))  # ~12,000 characters
    choices = [Choice(value="/summary", label="回答確認")]
    out = messages([Reply(key="k", text=text, choices=choices)])
    assert len(out) == 4 and all(units(o.html) <= MAX_MESSAGE for o in out)
    assert [o.keyboard is not None for o in out] == [False, False, False, True]
    assert "\n".join(o.html for o in out) == text  # cut at line ends only


# --- keyboards ----------------------------------------------------------------------------


def test_callback_data_is_the_choice_value():
    markup = keyboard([Choice(value="industry:retail", label="小売業（飲食店を含む）")])
    [[button]] = markup.inline_keyboard
    assert (button.text, button.callback_data) == ("小売業（飲食店を含む）", "industry:retail")


def test_short_labels_share_rows_long_ones_do_not():
    def choices(*words: str) -> list[Choice]:
        return [Choice(value=f"q:{n}", label=w) for n, w in enumerate(words)]

    assert labels(keyboard(choices("はい", "いいえ"))) == [["はい", "いいえ"]]
    three = keyboard(choices("製造業", "建設業", "運輸業", "卸売業"))
    assert labels(three) == [["製造業", "建設業", "運輸業"], ["卸売業"]]
    long = keyboard(
        [
            Choice(value="e:c", label="会社（株式会社・有限会社・合同会社など）"),
            Choice(value="e:s", label="個人事業主"),
        ]
    )
    assert labels(long) == [["会社（株式会社・有限会社・合同会社など）"], ["個人事業主"]]


def test_callback_data_over_64_bytes_is_left_out(caplog):
    ok, too_long = "/edit capital_yen", "/edit " + "あ" * 20  # 6 + 60 bytes
    with caplog.at_level(logging.WARNING):
        markup = keyboard([Choice(value=ok, label="直す"), Choice(value=too_long, label="長い")])
    assert labels(markup) == [["直す"]]
    assert "too long" in caplog.text
    assert keyboard([Choice(value=too_long, label="長い")]) is None
    assert keyboard([]) is None


def test_only_the_last_reply_with_choices_gets_a_keyboard():
    first = Reply(key="a", text="前", choices=[Choice(value="/restart", label="最初から")])
    last = Reply(key="b", text="次", choices=[Choice(value="q:true", label="はい")])
    after = Reply(key="c", text="後")
    out = messages([first, last, after])
    assert [o.keyboard is not None for o in out] == [False, True, False]
    assert labels(out[1].keyboard) == [["はい"]]


def test_reports_are_preformatted_per_chunk():
    out = preformatted("番号  状態\n1     <進行中>")
    assert [o.html for o in out] == ["<pre>番号  状態\n1     &lt;進行中&gt;</pre>"]
    assert all(o.keyboard is None for o in out)
    big = preformatted("\n".join(["x" * 100] * 100))
    assert len(big) == 3 and all(
        o.html.startswith("<pre>") and o.html.endswith("</pre>") for o in big
    )
