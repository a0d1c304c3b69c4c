"""Settings shared by every face of the bot, from the environment or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    subsidy_db: Path = Path("data/subsidy.db")
    telegram_bot_token: SecretStr | None = None  # SecretStr: never printed by repr or errors
    telegram_api_url: str | None = None  # python-telegram-bot base_url form: http://host:port/bot
    admin_user_ids: Annotated[frozenset[int], NoDecode] = Field(default_factory=frozenset)
    line_channel_secret: SecretStr | None = None
    line_channel_access_token: SecretStr | None = None
    line_api_url: str = "https://api.line.me"  # Messaging API base URL (tests: the emulator)
    line_admin_user_ids: Annotated[frozenset[str], NoDecode] = Field(default_factory=frozenset)
    subsidy_lang: str = "ja"
    log_level: str = "INFO"
    abandon_after_days: int = 7  # a conversation idle longer, without a verdict, was abandoned

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value):
        if isinstance(value, str):
            return frozenset(int(v) for v in value.replace(" ", "").split(",") if v)
        return value

    @field_validator("line_admin_user_ids", mode="before")
    @classmethod
    def _split_line_ids(cls, value):  # LINE user ids are text: U followed by 32 hex digits
        if isinstance(value, str):
            return frozenset(v for v in value.replace(" ", "").split(",") if v)
        return value


def load() -> Settings:
    return Settings()
