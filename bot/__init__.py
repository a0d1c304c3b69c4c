"""Telegram and console adapters for the Tochigi subsidy screening dialog."""
