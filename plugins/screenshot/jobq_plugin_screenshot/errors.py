"""Reason codes for screenshots the plugin refuses; none of them can be fixed by a retry."""

from __future__ import annotations

from jobq import UnrecoverableError

ERR_INVALID_DATA_URL = "ERR_INVALID_DATA_URL"
ERR_UNSUPPORTED_MIME = "ERR_UNSUPPORTED_MIME"
ERR_INVALID_BASE64 = "ERR_INVALID_BASE64"
ERR_PAYLOAD_TOO_LARGE = "ERR_PAYLOAD_TOO_LARGE"
ERR_MIME_MISMATCH = "ERR_MIME_MISMATCH"
ERR_INVALID_IMAGE = "ERR_INVALID_IMAGE"
ERR_DECOMPRESSION_BOMB = "ERR_DECOMPRESSION_BOMB"
ERR_IMAGE_DIMENSIONS = "ERR_IMAGE_DIMENSIONS"


class ScreenshotRejected(UnrecoverableError):
    """The screenshot cannot be processed as sent.

    The message names the problem and never quotes the payload: screenshots show users' screens.
    """

    code = ERR_INVALID_IMAGE

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class InvalidScreenshotField(ValueError):
    """Raised by payload validators at enqueue; carries the reason code the handler would use."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
