"""The guideline as code: answers in, a three-valued verdict out. Pure; no I/O but reading data."""

from rules.engine import evaluate
from rules.model import Answers, Reason, Verdict

__all__ = ["Answers", "Reason", "Verdict", "evaluate"]
