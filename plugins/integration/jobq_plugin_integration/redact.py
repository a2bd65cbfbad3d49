"""Scrub a job's credentials from every text the plugin emits (errors, logs).

A vendor may echo what it was sent: the raw token, the ``email:token`` pair Basic auth
encodes, or the token percent-encoded in a URL. Every such form is replaced.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from jobq.redaction import redact

MAX_MESSAGE = 500


def variants(secret: str) -> set[str]:
    """The forms a secret can take in a response body or an error message."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return {f for f in forms if len(f) >= 4}


class Redactor:
    """Callable that redacts ``secrets`` (and their encoded forms) from text and caps its length."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for s in secrets:
            if isinstance(s, str) and len(s) >= 4:
                found |= variants(s)
        self._secrets = sorted(found, key=len, reverse=True)

    @property
    def values(self) -> list[str]:
        """Every form of every secret, longest first."""
        return list(self._secrets)

    def __call__(self, text: object, limit: int = MAX_MESSAGE) -> str:
        out = redact(str(text), self._secrets)
        if len(out) > limit:
            out = out[: limit - 1] + "…"
        return out

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._secrets)} secret forms>"
