"""Cut time-ordered events into windows of 30 seconds and gzip each window as a JSON array.

Windows are aligned on the first event: window ``k`` holds the events with
``first + k·30 s <= timestamp < first + (k+1)·30 s``. An empty window produces no chunk, so a
gap of days between two events costs nothing. Each chunk is compressed while it is built, so
memory holds one chunk's compressed bytes plus a 64 KB input buffer, whatever the chunk's size.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator

import attrs

WINDOW_MS = 30_000.0
GZIP_WBITS = 31  # zlib container = gzip (header with mtime 0: the same events give the same bytes)
_FLUSH_AT = 64 * 1024


def chunk_name(index: int) -> str:
    """``chunk-001.json.gz`` for the first chunk (more digits past 999)."""
    return f"chunk-{index:03d}.json.gz"


@attrs.frozen(kw_only=True)
class Chunk:
    """One gzip'd chunk and what the manifest says about it.

    :param index: 1-based position in the replay.
    :param window: the window number from the first event (``0`` for the first 30 s).
    :param raw_size: bytes of the JSON array before compression.
    :param data: the gzip file's bytes.
    """

    index: int
    window: int
    first_timestamp: float
    last_timestamp: float
    event_count: int
    raw_size: int
    data: bytes

    @property
    def name(self) -> str:
        return chunk_name(self.index)

    @property
    def size(self) -> int:
        return len(self.data)


class _GzipArray:
    """A JSON array written element by element into a gzip stream."""

    __slots__ = ("_buffer", "_out", "_zip", "count", "raw_size")

    def __init__(self, level: int) -> None:
        self._zip = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)
        self._out: list[bytes] = []
        self._buffer = bytearray(b"[")
        self.raw_size = 1
        self.count = 0

    def add(self, body: bytes) -> None:
        if self.count:
            self._buffer += b","
            self.raw_size += 1
        self._buffer += body
        self.raw_size += len(body)
        self.count += 1
        if len(self._buffer) >= _FLUSH_AT:
            self._out.append(self._zip.compress(self._buffer))
            self._buffer.clear()

    def finish(self) -> bytes:
        self._buffer += b"]"
        self.raw_size += 1
        self._out.append(self._zip.compress(self._buffer))
        self._out.append(self._zip.flush())
        self._buffer = bytearray()
        return b"".join(self._out)


def iter_chunks(events: Iterable[tuple[float, bytes]], *, window_ms: float = WINDOW_MS,
                level: int = 6) -> Iterator[Chunk]:
    """Group ``(timestamp_ms, event_json)`` pairs, in time order, into gzip'd chunks.

    :param events: compact JSON of each event with its timestamp, sorted by timestamp.
    :param window_ms: the width of one window.
    :param level: zlib compression level (1 fastest .. 9 smallest).
    :raises ValueError: the events are not in time order.
    """
    if window_ms <= 0:
        raise ValueError("window_ms must be positive")
    origin: float | None = None
    current: _GzipArray | None = None
    window = 0
    first = last = 0.0
    index = 0
    for ts, body in events:
        if origin is None:
            origin = ts
        elif ts < last:
            raise ValueError("events must be sorted by timestamp")
        w = math.floor((ts - origin) / window_ms)
        if current is None or w != window:
            if current is not None:
                index += 1
                yield _finish(current, index, window, first, last)
            current = _GzipArray(level)
            window = w
            first = ts
        current.add(body)
        last = ts
    if current is not None:
        index += 1
        yield _finish(current, index, window, first, last)


def _finish(array: _GzipArray, index: int, window: int, first: float, last: float) -> Chunk:
    data = array.finish()
    return Chunk(index=index, window=window, first_timestamp=first, last_timestamp=last,
                 event_count=array.count, raw_size=array.raw_size, data=data)
