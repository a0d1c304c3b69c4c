"""The verdict as the rules command's JSON, with messages in the conversation's language."""

from __future__ import annotations

from locales import t
from rules import Verdict


def verdict_json(verdict: Verdict, lang: str | None = None) -> dict:
    return {
        "status": verdict.status,
        "reasons": [
            {
                "criterion": r.criterion,
                "status": r.status,
                "clause": r.clause,
                "message": t(r.message_key, lang, **r.params),
            }
            for r in verdict.reasons
        ],
        "missing": list(verdict.missing),  # its own list: the verdict may be a remembered one
        "ruleset": verdict.ruleset,
        "warnings": [t(w["key"], lang, **w["params"]) for w in verdict.warnings],
    }
