"""The guideline as code: answers in, a three-valued verdict out. Pure; no I/O but reading data."""

from rules.engine import evaluate, relevant_fields
from rules.model import Answers, Reason, Verdict

__all__ = ["Answers", "Reason", "Verdict", "evaluate", "relevant_fields"]
