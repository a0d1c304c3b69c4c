"""Plain data that crosses the seam between the dialog and its adapters (JSON in and out)."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from rules.model import shallow_copy


class UserInput(BaseModel):
    """What arrived from the user: typed text, or the value of a pressed button."""

    text: str | None = None
    choice: str | None = None  # a Choice.value from a button

    @property
    def raw(self) -> str:
        return self.text if self.text is not None else f"[{self.choice}]"


class Choice(BaseModel):
    value: str  # machine value (answer value, or a command such as "/restart")
    label: str  # rendered label, in the conversation's language


class Reply(BaseModel):
    """One bot message, already rendered in the conversation's language."""

    key: str  # locale key of the main text (for logs and tests)
    text: str
    choices: list[Choice] = Field(default_factory=list)
    verdict: dict | None = None  # the rules command's JSON, when the verdict is given


class Interpretation(BaseModel):
    """How `step` understood the last input: what the event log records beside the raw text."""

    question: str | None = None  # the question awaited when the input arrived
    outcome: Literal["answer", "confirm", "reask", "command", "help", "start", "ignored"] = (
        "ignored"  # confirm: a typed reading read back before it is recorded (nothing recorded yet)
    )
    value: Any = None  # the parsed answer value (JSON-ready), when outcome is answer or confirm
    command: str | None = None


class State(BaseModel):
    """Per-chat state: plain data, serialisable to JSON, rebuilt without rebuilding the machine."""

    phase: str = "start"  # the transitions machine's state
    lang: str = "ja"
    answers: dict[str, Any] = Field(default_factory=dict)  # the answered fields, as JSON
    history: list[str] = Field(default_factory=list)  # question ids answered, in order (for /back)
    skipped: list[str] = Field(default_factory=list)  # questions the user chose to leave open
    awaiting: str | None = None  # question id being asked
    approx: list[str] = Field(default_factory=list)  # answers the user gave as estimates
    offered: list[Choice] = Field(default_factory=list)  # the buttons last shown: typing a
    # label exactly, or its number, selects it on any channel
    last: Interpretation = Field(default_factory=Interpretation)
    verdict: dict | None = None  # last verdict JSON once decided
    reference: str | None = None  # the reference number, put here by storage at creation
    # A typed reading being read back before it is recorded: {"field", "value", "approx",
    # "note", "bound"}; `awaiting` is its field meanwhile. `pending`: readings from the same
    # message waiting behind it (several answers in one message), in asking order.
    confirming: dict | None = None
    pending: list[dict] = Field(default_factory=list)
    asked: list[str] = Field(default_factory=list)  # questions shown, in order (progress count)
    guided: list[str] = Field(default_factory=list)  # questions that got the "don't know" help
    bounds: dict[str, list] = Field(default_factory=dict)  # answers given as a bound: [op, n]
    co2: dict | None = None  # the CO2 estimate sub-dialog while open (dialogs/co2_dialog.py)
    # The accepted CO2 estimate, for the checklist: {"before", "after" (as recorded), "lines"
    # (its working and factors, in the conversation's language)}.
    co2_estimate: dict | None = None


_ATOMS = frozenset({str, int, float, bool, type(None), Decimal, dt.date})


def _copied(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMS:  # immutable: deepcopy returns them as they are too
        return value
    if kind is dict:
        return {k: v if type(v) in _ATOMS else _copied(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMS else _copied(v) for v in value]
    if kind is tuple:
        return tuple(_copied(v) for v in value)
    if isinstance(value, BaseModel):
        return copied(value)
    return copy.deepcopy(value)


def copied(model: BaseModel, blank: tuple[str, ...] = ()) -> BaseModel:
    """`model.model_copy(deep=True)` for the plain data crossing the seam (JSON values, lists,
    dicts and models of them), without copy.deepcopy's memo and dispatch: a fresh copy of every
    list, dict and model inside, the immutable values shared; a value of another type still
    goes through copy.deepcopy. Fields named in `blank` are not copied but set to None (a
    step's copy of the fields it sets before any use)."""
    new = shallow_copy(model)  # its own __dict__ and fields set, the values still shared
    fields = new.__dict__
    for name, value in fields.items():
        if name in blank:
            fields[name] = None
        elif type(value) not in _ATOMS:
            fields[name] = _copied(value)
    return new
