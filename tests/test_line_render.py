"""Rendering dialog replies for LINE: short labels, quick replies, numbered lists, splitting.
Every rendered turn is checked by the emulator's validator, i.e. against LINE's own limits."""

from __future__ import annotations

import logging

import pytest

from bot.line.render import (
    MAX_ITEMS,
    MAX_TEXT,
    batches,
    calls,
    label,
    messages,
    quick_reply,
)
from dialogs.engine import step
from dialogs.io import Choice, Reply, State, UserInput
from dialogs.questions import questions
from locales import LANGS, has, t

try:  # tests/ is not a package: importable either way
    from tests.line_emulator import check_messages
except ImportError:
    from line_emulator import check_messages


def offered(lang: str, budget: int = 1500) -> dict[tuple, list[Reply]]:
    """Every distinct set of choices the dialog offers, found by pressing every choice (and
    typing a plausible number where one is asked) from the start, with a turn that showed it.
    A state is explored further only if it showed choices not seen before."""
    seen: dict[tuple, list[Reply]] = {}
    frontier = [step(State(lang=lang), UserInput(choice="/start"))[0]]
    while frontier and budget > 0:
        state = frontier.pop()
        inputs = [UserInput(choice=c.value) for c in state.offered]
        inputs += [UserInput(text=x) for x in ("1000", "/summary", "/help")]
        for inp in inputs:
            budget -= 1
            new, replies = step(state, inp)
            for reply in replies:
                key = tuple(c.value for c in reply.choices)
                if key and key not in seen:
                    seen[key] = replies
                    frontier.append(new)
    return seen


@pytest.mark.parametrize("lang", LANGS)
def test_every_choice_the_dialog_offers_renders_as_line_accepts_it(lang, caplog):
    caplog.set_level(logging.WARNING, logger="bot.line.render")
    found = offered(lang)
    values = {v for key in found for v in key}
    assert len(found) > 20 and {"/summary", "/restart", "entity_type:company"} <= values
    for key, replies in found.items():
        for call in batches(messages(replies, lang)):
            check_messages(call)
        group = next(r.choices for r in replies if tuple(c.value for c in r.choices) == key)
        labels = [label(c, lang) for c in group]
        assert len(set(labels)) == len(labels), labels  # each button tells itself apart
    assert caplog.records == []  # no label was cut for want of a short one


@pytest.mark.parametrize("lang", LANGS)
def test_every_answer_choice_has_a_short_label(lang):
    for qid, q in questions().items():
        if q.kind == "choice":
            for value, _ in q.options(lang):
                assert has(f"line.labels.{qid}.{value}", lang), (qid, value)


def test_long_labels_are_short_on_the_button_and_whole_in_the_text():
    [q] = messages(
        [
            Reply(
                key="question.entity_type.text",
                text="事業者の種類を教えてください。",
                choices=[
                    Choice(value="entity_type:company", label=t("choices.entity_type.company")),
                    Choice(value="entity_type:other", label=t("choices.entity_type.other")),
                ],
            )
        ],
        "ja",
    )
    check_messages([q])
    first = q["quickReply"]["items"][0]["action"]
    assert first == {
        "type": "postback",
        "label": t("line.labels.entity_type.company"),
        "data": "entity_type:company",
        "displayText": t("choices.entity_type.company"),
    }
    assert q["text"].endswith(f"1. {t('choices.entity_type.company')}\n2. その他")


def test_labels_that_fit_need_no_list_and_commands_fill_free_places():
    yes_no = [
        Choice(value="tax_arrears:true", label="はい"),
        Choice(value="x:false", label="いいえ"),
    ]
    [q] = messages([Reply(key="k", text="滞納がありますか？", choices=yes_no)], "ja")
    assert q["text"] == "滞納がありますか？"
    actions = [i["action"] for i in q["quickReply"]["items"]]
    assert [a["label"] for a in actions] == [
        "はい",
        "いいえ",
        "戻る",
        "回答確認",
        "ヘルプ",
        "最初から",
    ]
    assert actions[2] == {"type": "message", "label": "戻る", "text": "戻る"}


def test_a_command_already_offered_is_not_repeated():
    choices = [
        Choice(value="/summary", label="回答確認"),
        Choice(value="/restart", label="最初から"),
    ]
    labels = [i["action"]["label"] for i in quick_reply(choices, "ja")["items"]]
    assert labels == ["回答確認", "最初から", "戻る", "ヘルプ"]


def test_more_than_13_choices_go_as_a_list():
    choices = [Choice(value=f"/edit f{n}", label=f"直す: 項目{n}") for n in range(14)]
    [out] = messages([Reply(key="dialog.summary_title", text="回答:", choices=choices)], "ja")
    check_messages([out])
    # bulleted, not numbered: the summary may be shown while a number is the answer awaited
    assert out["text"].endswith("- 直す: 項目12\n- 直す: 項目13")
    assert all(i["action"]["type"] == "message" for i in out["quickReply"]["items"])
    [question] = messages([Reply(key="question.q.text", text="どれ？", choices=choices)], "ja")
    assert "\n14. 直す: 項目13" in question["text"]


def test_quick_reply_only_on_the_last_message():
    replies = [
        Reply(key="a", text="質問", choices=[Choice(value="q:true", label="はい")]),
        Reply(key="b", text="補足"),
    ]
    out = messages(replies, "ja")
    assert "quickReply" not in out[0] and out[1]["quickReply"]["items"][0]["action"]["data"] == (
        "q:true"
    )


def test_long_text_is_split_and_sent_five_messages_per_call():
    line = "あ" * 999
    long = "\n".join([line] * 30)  # 30,000 characters: 6 messages of 5 lines
    out = messages([Reply(key="verdict.title.eligible", text=long)], "ja")
    assert len(out) == 6 and all(len(m["text"]) <= MAX_TEXT for m in out)
    assert "\n".join(m["text"] for m in out) == long
    assert [len(c) for c in batches(out)] == [5, 1]
    for call in batches(out):
        check_messages(call)


def test_calls_keep_a_reply_within_one_call_and_count_the_replies_sent():
    def reply(lines: int) -> Reply:  # a reply of `lines` messages
        return Reply(key="k", text="\n".join(["あ" * 4999] * lines))

    got = [(len(batch), done) for batch, done in calls([reply(1), reply(3), reply(2)], "ja")]
    assert got == [(4, 2), (2, 3)]
    got = [(len(batch), done) for batch, done in calls([reply(1), reply(7)], "ja")]
    assert got == [(1, 1), (5, 1), (2, 2)]


@pytest.mark.parametrize("lang", LANGS)
def test_a_whole_dialog_renders_within_lines_limits(lang):
    """Every turn of a real dialog (with the summary and 'don't know'), as LINE would check it."""
    state = State(lang=lang)
    inputs = ["/start", "entity_type:company", "/summary", "/continue", "industry:?", "/help"]
    inputs += ["industry:manufacturing", "300000000", "/summary", "/back", "/restart"]
    for raw in inputs:
        inp = UserInput(choice=raw) if ":" in raw or raw.startswith("/") else UserInput(text=raw)
        state, replies = step(state, inp)
        out = messages(replies, lang)
        assert out
        for call in batches(out):
            check_messages(call)
        items = out[-1].get("quickReply", {}).get("items", [])
        assert len(items) <= MAX_ITEMS
