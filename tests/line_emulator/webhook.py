"""Signing and posting a webhook request the way the LINE platform does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.error
import urllib.request


def signature(channel_secret: str, body: bytes) -> str:
    """``x-line-signature``: base64(HMAC-SHA256(channel secret, raw body))."""
    digest = hmac.new(channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def post(url: str, body: bytes, signature_header: str | None, timeout: float = 30) -> int:
    """POST ``body`` as LINE does, with ``x-line-signature: signature_header`` (None: no
    header). Returns the HTTP status, 0 when no answer came."""
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "LineBotWebhook"}
    if signature_header is not None:
        headers["x-line-signature"] = signature_header
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0
