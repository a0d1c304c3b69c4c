"""The LINE adapter: webhook server, rendering, sending (line-bot-sdk v3, aiohttp)."""
