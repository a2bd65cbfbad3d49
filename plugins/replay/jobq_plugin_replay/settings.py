"""The replay plugin's settings, read from ``REPLAY_*`` environment variables at handler time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

import attrs
from jobq import ConfigError

MAX_BYTES = "REPLAY_MAX_BYTES"
MAX_EVENTS = "REPLAY_MAX_EVENTS"
MAX_DEPTH = "REPLAY_MAX_DEPTH"
CHUNK_SECONDS = "REPLAY_CHUNK_SECONDS"
GZIP_LEVEL = "REPLAY_GZIP_LEVEL"
SPOOL_MEMORY_BYTES = "REPLAY_SPOOL_MEMORY_BYTES"
IDLE_SECONDS = "REPLAY_IDLE_SECONDS"
MAX_CHUNK_BYTES = "REPLAY_MAX_CHUNK_BYTES"
MAX_CHUNKS = "REPLAY_MAX_CHUNKS"
ENV_NAMES = (MAX_BYTES, MAX_EVENTS, MAX_DEPTH, CHUNK_SECONDS, GZIP_LEVEL, SPOOL_MEMORY_BYTES, IDLE_SECONDS,
             MAX_CHUNK_BYTES, MAX_CHUNKS)
_FIELDS = {
    MAX_BYTES: ("max_bytes", int),
    MAX_EVENTS: ("max_events", int),
    MAX_DEPTH: ("max_depth", int),
    CHUNK_SECONDS: ("chunk_seconds", float),
    GZIP_LEVEL: ("gzip_level", int),
    SPOOL_MEMORY_BYTES: ("spool_memory_bytes", int),
    IDLE_SECONDS: ("idle_seconds", float),
    MAX_CHUNK_BYTES: ("max_chunk_bytes", int),
    MAX_CHUNKS: ("max_chunks", int),
}


def _positive(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"replay setting {attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class ReplaySettings:
    """Limits and choices; defaults and their reasons are in docs/plugins/replay.md.

    :param max_bytes: largest raw JSON payload read (checked before parsing when the size is known).
    :param max_events: most events in one replay.
    :param max_depth: deepest JSON nesting accepted (checked on the raw bytes before the parser).
    :param chunk_seconds: width of one chunk's time window.
    :param gzip_level: zlib level of the chunks (chosen by measurement: see the docs).
    :param spool_memory_bytes: the re-encoded events stay in memory up to this size, then spill
        to a temporary file (``TMPDIR``).
    :param idle_seconds: a pause between two events longer than this is not activity: it does
        not count towards a chunk's ``chunk_seconds``.
    :param max_chunk_bytes: most bytes of JSON in one chunk (an event larger than that has its own).
    :param max_chunks: most chunks in one replay; it is then stored as at most ``max_chunks + 1``
        objects (the manifest). A replay that would need more is refused (``ERR_TOO_MANY_CHUNKS``).
    """

    max_bytes: int = attrs.field(default=100 * 1024 * 1024, validator=_positive)
    max_events: int = attrs.field(default=1_000_000, validator=_positive)
    max_depth: int = attrs.field(default=512, validator=_positive)
    chunk_seconds: float = attrs.field(default=30.0, validator=_positive)
    gzip_level: int = attrs.field(default=6)
    spool_memory_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=attrs.validators.ge(0))
    idle_seconds: float = attrs.field(default=10.0, validator=_positive)
    max_chunk_bytes: int = attrs.field(default=4 * 1024 * 1024, validator=_positive)
    max_chunks: int = attrs.field(default=2000, validator=_positive)

    @gzip_level.validator
    def _check_level(self, _attribute: attrs.Attribute, value: int) -> None:
        if not 1 <= value <= 9:
            raise ConfigError(f"{GZIP_LEVEL} must be between 1 and 9, got {value!r}")

    @property
    def window_ms(self) -> float:
        return self.chunk_seconds * 1000.0

    @property
    def idle_ms(self) -> float:
        return self.idle_seconds * 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplaySettings:
        """Settings from ``env`` (default ``os.environ``); unset or empty variables keep the defaults."""
        e = os.environ if env is None else env
        return _from_values(tuple(e.get(name) or None for name in ENV_NAMES))


def current() -> ReplaySettings:
    """The settings of the current environment, cached until a ``REPLAY_*`` variable changes."""
    return ReplaySettings.from_env()


@lru_cache(maxsize=8)
def _from_values(values: tuple[str | None, ...]) -> ReplaySettings:
    kwargs: dict[str, object] = {}
    for name, raw in zip(ENV_NAMES, values, strict=True):
        if raw is None:
            continue
        field, kind = _FIELDS[name]
        try:
            kwargs[field] = kind(raw.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    return ReplaySettings(**kwargs)  # type: ignore[arg-type]
