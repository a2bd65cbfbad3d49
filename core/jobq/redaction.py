"""Keep secrets out of failure records, logs and events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .jobs import REDACTED

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_AUTH_HEADER = re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key|token|password|secret)(['\"]?\s*[:=]\s*['\"]?)"
                          r"(bearer\s+|basic\s+|token\s+)?[^\s'\",}]+")


def secret_values(secrets: Any) -> list[str]:
    """Every string leaf of a secrets object worth scrubbing (4 characters or more), longest first."""
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            if len(v) >= 4:
                found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x)

    walk(secrets)
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values, URL credentials and credential-looking pairs in ``text``."""
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
