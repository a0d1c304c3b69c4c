"""Telegram and console adapters for the Tochigi subsidy screening dialog."""

# Longer inputs are refused politely before the dialog, on every face (no answer is that long;
# Telegram's own limit for a message is 4,096). Here, not in bot.settings: the console uses it
# without loading pydantic-settings.
MAX_INPUT_CHARS = 1000
