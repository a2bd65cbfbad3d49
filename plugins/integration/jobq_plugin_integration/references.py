"""``env:NAME`` credential references, resolved from the worker's environment.

A reference comes from whoever enqueues the job, and the worker sends the value to an API URL
that the same producer chose. So a reference may only name a variable the operator set aside for
credentials: one whose name starts with ``JOBQ_CREDENTIAL_``, or one listed in
``JOBQ_CREDENTIAL_ENV_ALLOW``. Anything else (``AWS_SECRET_ACCESS_KEY``, ``DATABASE_URL``) is
refused before any request is built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from jobq import ConfigError

from .errors import InvalidField

ENV_REFERENCE = "env:"
CREDENTIAL_PREFIX = "JOBQ_CREDENTIAL_"
ALLOW_ENV = "JOBQ_CREDENTIAL_ENV_ALLOW"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def allowed_names(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names listed in ``JOBQ_CREDENTIAL_ENV_ALLOW`` (comma-separated).

    :raises jobq.ConfigError: an entry is not an environment variable name.
    """
    e = os.environ if env is None else env
    names = [n.strip() for n in (e.get(ALLOW_ENV) or "").split(",") if n.strip()]
    bad = [n for n in names if not _ENV_NAME.fullmatch(n)]
    if bad:
        raise ConfigError(f"{ALLOW_ENV}: {bad[0]!r} is not an environment variable name")
    return frozenset(names)


def is_allowed(name: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a reference may read variable ``name``."""
    if not _ENV_NAME.fullmatch(name):
        return False
    return (name.startswith(CREDENTIAL_PREFIX) and len(name) > len(CREDENTIAL_PREFIX)) or name in allowed_names(env)


def resolve_references(credentials: Any, env: Mapping[str, str] | None = None) -> Any:
    """Replace ``"env:NAME"`` values of ``credentials`` with the variable's value.

    :raises InvalidField: naming ``credentials.<key>`` when ``NAME`` is not allowed or not set
        (the job fails for good: no retry changes the worker's environment).
    """
    if not isinstance(credentials, dict):
        return credentials
    e = os.environ if env is None else env
    out = {}
    for key, value in credentials.items():
        if isinstance(value, str) and value.startswith(ENV_REFERENCE):
            name = value[len(ENV_REFERENCE):]
            field = f"credentials.{key}"
            if not is_allowed(name, e):
                raise InvalidField(field, f"refers to environment variable {name[:128]!r}, which references may "
                                   f"not read: only names starting with {CREDENTIAL_PREFIX} or listed in "
                                   f"{ALLOW_ENV}")
            if name not in e:
                raise InvalidField(field, f"refers to environment variable {name!r}, which is not set on the worker")
            value = e[name]
        out[key] = value
    return out
