"""bot/logsafe.py: no record handled by the root handlers can carry the token."""

from __future__ import annotations

import io
import logging
from urllib.parse import quote

import pytest

from bot import logsafe

TOKEN = "123456789:AAE-secret_Part-0123456789abcdef"


@pytest.fixture
def log_text():
    """Install logsafe as the bot does, on a handler whose output the test reads."""
    root = logging.getLogger()
    names = ("", *logsafe.CHATTY, *getattr(logsafe, "PAYLOADS", ()))
    levels = {name: logging.getLogger(name).level for name in names}
    handler = logsafe.setup("DEBUG", [TOKEN, "webhook-secret"])
    stream = io.StringIO()
    handler.setStream(stream)
    yield stream.getvalue
    root.removeHandler(handler)
    for each in root.handlers:
        each.filters = [f for f in each.filters if not isinstance(f, logsafe.RedactSecrets)]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def test_token_is_redacted_from_messages_args_and_urls(log_text):
    log = logging.getLogger("telegram.ext.Application")
    log.debug("POST https://api.telegram.org/bot%s/getMe", TOKEN)
    log.info(f"token in the message itself: {TOKEN}")
    log.warning("quoted: %s", quote(TOKEN, safe=""))
    log.warning("a dict %r", {"secret_token": "webhook-secret"})
    out = log_text()
    assert TOKEN not in out and "AAE-secret" not in out and "webhook-secret" not in out
    assert out.count(logsafe.REDACTED) == 4


def test_token_is_redacted_from_exceptions_and_stacks(log_text):
    try:
        raise RuntimeError(f"Unauthorized for url https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        logging.getLogger("telegram.ext").exception("failed", stack_info=True)
    out = log_text()
    assert "RuntimeError" in out and "Traceback" in out and "Stack (most recent" in out
    assert TOKEN not in out


def test_a_broken_format_still_logs_without_the_token(log_text):
    logging.getLogger("x").error("two %s %s", TOKEN)  # one argument short
    out = log_text()
    assert "two" in out and TOKEN not in out


def test_http_client_loggers_stay_at_warning(log_text):
    assert logging.getLogger().level == logging.DEBUG
    for name in logsafe.CHATTY:
        assert logging.getLogger(name).level == logging.WARNING
    logging.getLogger("httpx").info("HTTP Request: POST https://example/bot%s/x", TOKEN)
    assert "HTTP Request" not in log_text()


def test_warnings_go_through_the_filter(log_text):
    import warnings

    warnings.warn(f"deprecated call with {TOKEN}", UserWarning, stacklevel=1)
    out = log_text()
    assert "deprecated call" in out and TOKEN not in out


def test_debug_logs_keep_no_user_names_or_texts(log_text):
    """PTB logs API parameters and results at DEBUG (texts, first names): they would outlive
    /delete in the log files. Our own DEBUG lines still show."""
    from telegram import Bot

    Bot._LOGGER.debug("Calling Bot API endpoint `sendMessage` with parameters `%s`", "山田 太郎")
    logging.getLogger("telegram.ext.Updater").debug("Webhook received data: %s", "山田 太郎")
    logging.getLogger("bot.telegram.adapter").debug("our own line")
    out = log_text()
    assert "山田" not in out and "our own line" in out
