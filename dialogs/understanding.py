"""What a typed answer says about the question awaited: one `Reading` per message.

The dialog (engine.py) consumes this; button presses never come here. The contract:

- outcome "value": `value` answers the question (int yen/people, Decimal tonnes, bool, choice
  value). `sure=False` asks the dialog to read it back before recording it (a contradiction
  such as "yes, there are none", a hedged answer, a reading the analyser is unsure of).
  `approx` marks an estimate the owner made ("about 80").
- "ask_back": the owner asks about the question (what is a blue return?): give its help.
- "hedge": only fillers or hesitation, no answer: re-ask gently.
- "unknown": the owner does not know: guidance.
- "ambiguous": several readings remain; `candidates` are the values to offer as buttons.
- "bound": a bound, not a figure (over 500 people): `bound` = (op, number).
- "invalid", "empty", "negative", "too_large": not understood; re-ask with the reason.

`also` lists other questions the message clearly answers, ((field, value), ...), never a guess.
`note` is (locale key, params) explaining the reading (which industry row and why).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dialogs.questions import questions

Outcome = Literal[
    "value",
    "ask_back",
    "hedge",
    "unknown",
    "ambiguous",
    "bound",
    "invalid",
    "empty",
    "negative",
    "too_large",
]


@dataclass(frozen=True)
class Reading:
    outcome: Outcome
    value: Any = None
    approx: bool = False
    sure: bool = True
    candidates: tuple = ()
    bound: tuple | None = None
    also: tuple = ()
    note: tuple | None = None


def understand(qid: str, text: str, answers: Mapping[str, Any], lang: str) -> Reading:
    """Read `text` typed in answer to question `qid`, given the answers so far."""
    parsed = questions()[qid].parse(text, lang)
    if parsed.ok:
        return Reading("value", parsed.value, approx=parsed.approx)
    return Reading(parsed.error or "invalid")
