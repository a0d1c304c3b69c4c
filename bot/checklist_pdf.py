"""The application checklist (dialogs/checklist.py) as a one-page A4 PDF, with fpdf2.

The Japanese font is IPAexGothic as the matplotlib-fontja package ships it (found without
importing matplotlib); fpdf2 embeds the subset of glyphs used, so the PDF shows the same on any
machine and nothing is downloaded at run time. One page: the text is set at the largest size
at which everything fits.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from functools import cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos

from dialogs.checklist import Checklist, checklist, mark
from dialogs.io import State
from locales import t

FONT = "IPAexGothic"
SIZES = (10.0, 9.0, 8.0, 7.0, 6.0)  # pt, tried in turn until the checklist fits one page
MARGIN_MM = 15
LINE = 1.45  # line height as a multiple of the font size
PT_MM = 25.4 / 72
MISSING_GLYPHS = str.maketrans({"\u2082": "2"})  # IPAexGothic has no subscript two (CO₂)


@cache
def font_path() -> Path:
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("matplotlib-fontja (which ships the IPAexGothic font) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / "fonts" / "ipaexg.ttf"


def _flow(pdf: FPDF, doc: Checklist, lang: str, size: float, draw: bool) -> float:
    """Lay the checklist out at `size` pt: draw it, or (draw=False) only measure the height it
    needs. One function for both, so what was measured is what is drawn."""
    height = 0.0
    # Japanese has no spaces to break at: any character may end a line; other text by words.
    wrap = WrapMode.CHAR if lang == "ja" else WrapMode.WORD

    def text(body: str, pt: float, indent: float = 0, prefix: str = "", border: int = 0) -> None:
        nonlocal height
        h, pad = pt * PT_MM * LINE, 2 if border else 0
        pdf.set_font(FONT, size=pt)
        mark_w = pdf.get_string_width(prefix) if prefix else 0
        width = pdf.epw - indent - mark_w
        cell = dict(w=width, h=h, text=body.translate(MISSING_GLYPHS), align="L", border=border)
        cell |= dict(wrapmode=wrap, padding=pad)
        if not draw:
            height += pdf.multi_cell(**cell, dry_run=True, output="HEIGHT")
            return
        pdf.set_x(MARGIN_MM + indent)
        if prefix:  # a hanging mark: wrapped lines start under the text, not under the mark
            pdf.cell(mark_w, h, prefix)
        pdf.multi_cell(**cell, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def space(mm: float) -> None:
        nonlocal height
        height += mm
        if draw:
            pdf.ln(mm)

    text(doc.title, size + 6)
    text(doc.subtitle, size + 1)
    text(doc.meta, size)
    for section in doc.sections:
        space(size * PT_MM * 0.6)
        if draw:
            pdf.line(MARGIN_MM, pdf.get_y(), pdf.w - MARGIN_MM, pdf.get_y())
        space(size * PT_MM * 0.3)
        text(section.heading, size + 2)
        for line in section.lines:
            text(line, size, indent=size * PT_MM, prefix=mark(section, lang))
    space(size * PT_MM)
    text(doc.footer, size + 1, border=1)
    return height


def checklist_pdf(state: State, issued: dt.date) -> bytes | None:
    """The checklist as PDF bytes, on one A4 page (None before a verdict): set at the largest
    size that fits (loading the font costs most of the time, so it is loaded once)."""
    doc = checklist(state, issued)
    if doc is None:
        return None
    pdf = FPDF(format="A4")
    pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
    pdf.set_auto_page_break(True, margin=MARGIN_MM)
    pdf.set_creation_date(dt.datetime(issued.year, issued.month, issued.day, tzinfo=dt.UTC))
    pdf.set_title(doc.title)
    pdf.set_lang(state.lang)
    pdf.add_font(FONT, fname=font_path())
    pdf.add_page()
    usable = pdf.eph - 1  # a millimetre to spare for rounding
    size = next(
        (s for s in SIZES if _flow(pdf, doc, state.lang, s, draw=False) <= usable), SIZES[-1]
    )
    _flow(pdf, doc, state.lang, size, draw=True)
    data = bytes(pdf.output())
    for font in pdf.fonts.values():  # fontTools reads the font file lazily: close it now
        font.ttfont.close()
    return data


def filename(state: State) -> str:
    return t("takeaway.checklist.filename", state.lang, reference=state.reference or "")
