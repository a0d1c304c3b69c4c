"""The Telegram face: python-telegram-bot application, handlers, rendering, chat marks."""
