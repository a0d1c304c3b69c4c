"""Logging that cannot leak secrets: a filter on the root handlers that redacts them from
every record (message, arguments, exception and stack text), whichever logger it came from."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[REDACTED]"
# httpx logs every request URL at INFO, and the Bot API URL holds the token: keep them quiet
# whatever the level (the filter below would redact them anyway; this keeps logs readable).
CHATTY = ("httpx", "httpcore")
# python-telegram-bot logs every API call's parameters and results, and the webhook's bodies, at
# DEBUG: users' names and texts, which then outlive /delete in the log files. Never below INFO.
PAYLOADS = ("telegram.Bot", "telegram.ext.ExtBot", "telegram.ext.Updater")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactSecrets(logging.Filter):
    """Replaces each secret (as is and URL-quoted) with REDACTED in the formatted record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        forms = {form for s in secrets if s for form in (s, quote(s, safe=""), quote(s))}
        self.secrets = sorted(forms, key=len, reverse=True)  # longest first: no partial leftovers

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record, nor leak its args
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:  # format it now, redacted; handlers then print exc_text as is
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, text
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def setup(level: str | int, secrets: Iterable[str]) -> logging.Handler:
    """Log to stderr at `level`, with every root handler (this one and any already there)
    redacting `secrets`. Returns the stderr handler."""
    root = logging.getLogger()
    root.setLevel(level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    redact = RedactSecrets(secrets)
    for each in root.handlers:
        each.addFilter(redact)
    logging.captureWarnings(True)  # warnings go through the handlers (and the filter) too
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in PAYLOADS:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    return handler
