"""Users, password hashes (scrypt), login throttling and CSRF tokens of the dashboard.

``JOBQ_DASHBOARD_USERS`` is a comma-separated list of ``name:role:hash``; the hash comes from
``jobq dashboard hash-password`` and reads ``scrypt$<log2 n>$<r>$<p>$<salt>$<key>`` (URL-safe base64).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from typing import Any

import attrs

USERS_ENV = "JOBQ_DASHBOARD_USERS"
SECRET_ENV = "JOBQ_DASHBOARD_SECRET"
ROLES = ("admin", "viewer")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_LOG2N, _R, _P = 15, 8, 1  # 32 MiB, ~0.1 s per check: slow for guessing, fine for a login
MAX_PASSWORD = 1024
LOGIN_LIMIT = 5  # failed attempts per user and address ...
LOGIN_WINDOW_S = 900  # ... within this many seconds, then refused until the window ends


class UsersError(ValueError):
    """``JOBQ_DASHBOARD_USERS`` is malformed; the message names the entry, never a hash."""


@attrs.frozen
class User:
    name: str
    role: str
    hash: str = attrs.field(repr=False)

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, log2n: int = _LOG2N) -> str:
    """A new scrypt hash of ``password`` with a random salt (``log2n`` below 15 only in tests)."""
    if not password or len(password) > MAX_PASSWORD:
        raise ValueError(f"the password must be 1 to {MAX_PASSWORD} characters")
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=2**log2n, r=_R, p=_P, maxmem=2**28, dklen=32)
    return f"scrypt${log2n}${_R}${_P}${_b64(salt)}${_b64(key)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        raise ValueError("not a scrypt hash from `jobq dashboard hash-password`")
    log2n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if not (10 <= log2n <= 17 and 1 <= r <= 8 and 1 <= p <= 4):
        raise ValueError("scrypt parameters out of range")
    return log2n, r, p, _unb64(parts[4]), _unb64(parts[5])


_DUMMY = None


def verify_password(password: str, stored: str | None) -> bool:
    """Check ``password`` against ``stored`` in constant time; an unknown user (``None``) costs the same."""
    global _DUMMY
    if stored is None:
        _DUMMY = _DUMMY or hash_password(secrets.token_hex(8))
        stored = _DUMMY
    log2n, r, p, salt, key = _parse_hash(stored)
    if len(password) > MAX_PASSWORD:
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=2**log2n, r=r, p=p, maxmem=2**28, dklen=len(key))
    return hmac.compare_digest(got, key) and stored is not _DUMMY


def parse_users(raw: str | None) -> dict[str, User]:
    """Users from the ``JOBQ_DASHBOARD_USERS`` value; raises :class:`UsersError` naming the bad entry."""
    users: dict[str, User] = {}
    for i, item in enumerate((raw or "").split(","), 1):
        item = item.strip()
        if not item:
            continue
        name, _, rest = item.partition(":")
        role, _, stored = rest.partition(":")
        if not _NAME.fullmatch(name):
            raise UsersError(f"{USERS_ENV} entry {i}: the user name must match {_NAME.pattern}")
        if role not in ROLES:
            raise UsersError(f"{USERS_ENV} entry {i} ({name}): the role must be admin or viewer, got {role!r}")
        try:
            _parse_hash(stored)
        except ValueError as exc:
            raise UsersError(f"{USERS_ENV} entry {i} ({name}): {exc}") from None
        if name in users:
            raise UsersError(f"{USERS_ENV} names user {name!r} twice")
        users[name] = User(name, role, stored)
    return users


def users_from_env(env: Mapping[str, str] | None = None) -> dict[str, User]:
    return parse_users((os.environ if env is None else env).get(USERS_ENV))


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(session: Mapping[str, Any], sent: Any) -> bool:
    expected = session.get("csrf")
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)


def throttle_key(prefix: str, user: str, address: str) -> str:
    """One counter per user name and client address; hashed so neither lands in a key name."""
    digest = hashlib.sha256(f"{user}\0{address}".encode()).hexdigest()[:32]
    return f"{prefix}:dashboard:login:{digest}"
