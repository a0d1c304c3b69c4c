"""Staff-written dialog scenarios (YAML): steps of user input with expectations, run through
the real engine and storage. `subsidy-bot console --script FILE` reports them; the files under
tests/scenarios/ also run in pytest.

Format (see tests/scenarios/*.yaml and the README): `name`, an optional evaluation `date`,
and `steps`; the first step without `say`/`press` checks the opening turn; each later step
types text (`say:`) or presses the button with a label (`press:`), and `expect` may check
`awaiting` (question id or null), `verdict` (status), `contains` / `not_contains` (text of the
turn), `choices` (button labels), `confirming` ({field, value} being read back, or null) and
`answers` (field: value pairs the answers so far must hold; null for an absent field).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import yaml

from bot.console.session import Session, turn_json
from bot.storage import Storage
from dialogs.io import UserInput
from locales import t


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def check(expect: dict, out: dict) -> list[str]:
    """What an expectation finds wrong with one turn (empty when it holds)."""
    problems = []
    text = "\n".join(m["text"] for m in out["messages"])
    labels = [c for m in out["messages"] for c in m["choices"]]
    if "awaiting" in expect and out["awaiting"] != expect["awaiting"]:
        problems.append(f"awaiting {out['awaiting']!r} != {expect['awaiting']!r}")
    if "verdict" in expect:
        got = out["verdict"] and out["verdict"]["status"]
        if got != expect["verdict"]:
            problems.append(f"verdict {got!r} != {expect['verdict']!r}")
    for needle in _as_list(expect.get("contains", [])):
        if str(needle) not in text:
            problems.append(f"text lacks {needle!r}")
    for needle in _as_list(expect.get("not_contains", [])):
        if str(needle) in text:
            problems.append(f"text has {needle!r}")
    for label in _as_list(expect.get("choices", [])):
        if label not in labels:
            problems.append(f"no button {label!r}")
    if "confirming" in expect:
        want = expect["confirming"]
        got = out["confirming"]
        if want is None and got is not None or want is not None and got != want:
            problems.append(f"confirming {got!r} != {want!r}")
    for field, value in (expect.get("answers") or {}).items():
        got = out["answers"].get(field, None)
        if got != value:
            problems.append(f"answers.{field} {got!r} != {value!r}")
    return problems


def run(
    scenario: dict, storage: Storage, lang: str = "ja", date: dt.date | None = None
) -> list[tuple[int, str, list[str]]]:
    """Run every step; returns (step number, input, problems) per step."""
    on = date or scenario.get("date")
    session = Session.new(storage, "scenario", lang, on, test=True)
    results, offered = [], []
    for n, stp in enumerate(scenario["steps"]):
        if n == 0 and "say" not in stp and "press" not in stp:
            inp, shown = UserInput(text=session.opening), "(start)"
        elif "press" in stp:
            value = next((c.value for c in offered if c.label == stp["press"]), None)
            shown = f"[{stp['press']}]"
            if value is None:
                results.append((n, shown, [f"no button {stp['press']!r} to press"]))
                break
            inp = UserInput(choice=value)
        else:
            inp, shown = UserInput(text=str(stp["say"])), str(stp["say"])
        state, replies = session.send(inp)
        offered = state.offered
        results.append((n, shown, check(stp.get("expect", {}), turn_json(state, replies))))
    return results


def run_file(path: Path, lang: str = "ja", date: dt.date | None = None) -> int:
    """Print a pass/fail line per step; exit status 0 when every step passed."""
    scenario = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp, Storage(Path(tmp) / "scenario.db") as storage:
        results = run(scenario, storage, lang, date)
    failed = 0
    print(scenario.get("name", path))
    for n, shown, problems in results:
        failed += bool(problems)
        mark = t("console.fail" if problems else "console.pass", lang)
        print(f"  {mark} {n}: {shown}" + "".join(f"\n      - {p}" for p in problems))
    print(t("console.result", lang, passed=len(results) - failed, total=len(results)))
    return 1 if failed else 0
