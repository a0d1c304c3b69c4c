"""The application checklist an owner takes away after the verdict: what was understood, the
verdict with every reason and clause, the CO2 working, what to prepare, the reference number,
the ruleset and the date, and that the prefecture decides.

Built once as plain data (`checklist`), then rendered as plain text here (`checklist_text`: the
console, and LINE, which cannot send a file) or as a one-page PDF (bot/checklist_pdf.py).
The date is the adapter's: the dialog has no clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from dialogs.engine import CHECKLIST_KEY, Turn, next_steps, verdict_keys
from dialogs.io import Reply, State
from locales import t


@dataclass
class Section:
    heading: str
    lines: list[str] = field(default_factory=list)
    boxes: bool = False  # lines to tick off (boxes) rather than to read (bullets)


@dataclass
class Checklist:
    title: str
    subtitle: str
    meta: str  # reference number, date, ruleset
    sections: list[Section]
    footer: str  # the prefecture decides


def _co2_working(state: State) -> list[str]:
    """The working of the CO2 estimate the owner accepted (dialogs/co2_dialog.py), while the
    figures recorded are still the estimate's (an answer typed later replaces it)."""
    est = state.co2_estimate
    figures = [str(state.answers.get(f)) for f in ("co2_before_t", "co2_after_t")]
    return list(est["lines"]) if est and figures == [est["before"], est["after"]] else []


def _lines(text: str) -> list[str]:
    """A catalogue text's lines without their own bullets (the renderer adds its marks)."""
    return [line.strip().lstrip("・•-").strip() for line in text.splitlines() if line.strip()]


def checklist(state: State, issued: dt.date) -> Checklist | None:
    """The checklist of a conversation with a verdict (None before one), dated `issued`."""
    if state.verdict is None:
        return None
    lang, vj = state.lang, state.verdict
    turn = Turn(state, None)  # for the answers as shown in the chat; it evaluates nothing here
    answers = Section(
        t("takeaway.checklist.answers", lang),
        [
            f"{t(f'question.{f}.short', lang)}: {turn.shown_answer(f)}"
            for f in turn.summary_fields()
        ],
    )
    reasons = Section(
        t(verdict_keys(vj)[0], lang),
        [
            t(
                "takeaway.checklist.reason_line",
                lang,
                mark=t(f"takeaway.checklist.mark.{r['status']}", lang),
                message=r["message"],
                clause=r["clause"],
            )
            for r in vj["reasons"]
        ],
    )
    if vj.get("missing"):
        names = t("dialog.list_joiner", lang).join(
            t(f"question.{f}.short", lang) for f in vj["missing"]
        )
        reasons.lines.append(t("takeaway.checklist.open", lang, questions=names))
    sections = [answers, reasons]
    if working := _co2_working(state):
        sections.append(Section(t("takeaway.checklist.co2", lang), working))
    notes = list(vj.get("warnings", []))
    if state.approx:
        joined = t("dialog.list_joiner", lang).join(
            t(f"question.{f}.short", lang) for f in state.approx
        )
        notes.append(t("verdict.estimates", lang, answers=joined))
    if notes:
        sections.append(Section(t("takeaway.checklist.notes", lang), notes))
    prepare = [line for text in next_steps(vj, lang, documents=False) for line in _lines(text)]
    sections.append(Section(t("takeaway.checklist.prepare", lang), prepare, boxes=True))
    if vj["status"] != "ineligible":  # marked as examples: each call has its own list
        documents = _lines(t("takeaway.checklist.documents", lang))
        sections.append(Section(t("takeaway.checklist.documents_title", lang), documents, True))
    meta = t(
        "takeaway.checklist.meta",
        lang,
        reference=state.reference or t("takeaway.checklist.no_reference", lang),
        date=issued.isoformat(),
        ruleset=vj["ruleset"],
    )
    return Checklist(
        title=t("takeaway.checklist.title", lang),
        subtitle=t("takeaway.checklist.programme", lang),
        meta=meta,
        sections=sections,
        footer=t("takeaway.checklist.decides", lang),
    )


def mark(section: Section, lang: str) -> str:
    """What precedes each line of a section: a box to tick, or a bullet."""
    return t("takeaway.checklist.box" if section.boxes else "takeaway.checklist.bullet", lang)


def checklist_text(state: State, issued: dt.date) -> str | None:
    """The checklist as one plain-text message (None before a verdict)."""
    doc = checklist(state, issued)
    if doc is None:
        return None
    lang = state.lang
    out = [doc.title, doc.subtitle, doc.meta]
    for section in doc.sections:
        heading = t("takeaway.checklist.heading", lang, heading=section.heading)
        out += ["", heading, *(mark(section, lang) + line for line in section.lines)]
    out += ["", doc.footer]
    return "\n".join(out)


def with_checklist(state: State, replies: list[Reply], issued: dt.date) -> list[Reply]:
    """The replies with the checklist's text added to the dialog's "here it is", for faces
    that show text only (the console, LINE). As many replies as before: a face's count of
    replies sent stays right."""
    return [
        r.model_copy(update={"text": f"{r.text}\n\n{text}"})
        if r.key == CHECKLIST_KEY and (text := checklist_text(state, issued))
        else r
        for r in replies
    ]
