"""LINE Messaging API emulator for end-to-end tests (standard library only, 127.0.0.1)."""

from .server import ApiError, LineEmulator, check_messages
from .webhook import post, signature

__all__ = ["ApiError", "LineEmulator", "check_messages", "post", "signature"]
