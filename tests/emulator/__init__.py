"""Telegram Bot API emulator for end-to-end tests (standard library only)."""

from .server import ApiError, BotApiEmulator, plain_text

__all__ = ["ApiError", "BotApiEmulator", "plain_text"]
