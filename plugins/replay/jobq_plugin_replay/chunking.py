"""Cut time-ordered events into chunks of up to 30 seconds of activity, each a gzip'd JSON array.

Time is counted on an activity clock: a pause between two events longer than ``idle_ms``
(10 s, rrweb's own inactivity threshold) adds nothing to it. Window ``k`` holds the events whose
activity time is in ``[k·30 s, (k+1)·30 s)``. A recording without such pauses is cut exactly
as by wall time (windows aligned on the first event); a sparse one, events 31 s apart, does
not get one chunk per event but chunks bounded by ``max_chunk_bytes`` (4 MiB of JSON), which
also bounds any chunk. The cut depends only on timestamps and sizes, so :func:`count_chunks`
knows the number of chunks before anything is compressed or written. Each chunk is compressed
while it is built: memory holds one chunk's compressed bytes plus a 64 KB input buffer.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Iterator

import attrs

WINDOW_MS = 30_000.0
IDLE_MS = 10_000.0
MAX_CHUNK_BYTES = 4 * 1024 * 1024
GZIP_WBITS = 31  # zlib container = gzip (header with mtime 0: the same events give the same bytes)
_FLUSH_AT = 64 * 1024


def chunk_name(index: int) -> str:
    """``chunk-001.json.gz`` for the first chunk (more digits past 999)."""
    return f"chunk-{index:03d}.json.gz"


@attrs.frozen(kw_only=True)
class Chunk:
    """One gzip'd chunk and what the manifest says about it.

    :param index: 1-based position in the replay.
    :param window: the window number on the activity clock (``0`` for the first 30 s).
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


class _Cutter:
    """Decides, event by event, whether an event starts a new chunk (timestamps and sizes only)."""

    __slots__ = ("active", "idle_ms", "last", "max_bytes", "size", "started", "window", "window_ms")

    def __init__(self, window_ms: float, idle_ms: float, max_bytes: int) -> None:
        if window_ms <= 0 or idle_ms < 0 or max_bytes <= 0:
            raise ValueError("window_ms and max_chunk_bytes must be positive, idle_ms not negative")
        self.window_ms = window_ms
        self.idle_ms = idle_ms
        self.max_bytes = max_bytes
        self.started = False
        self.active = 0.0  # the activity clock
        self.window = 0
        self.last = 0.0
        self.size = 0  # raw bytes of the current chunk's array

    def new_chunk(self, ts: float, size: int) -> bool:
        if not self.started:
            self.started = True
            self.last = ts
            self.size = 1 + size + 1
            return True
        gap = ts - self.last
        if gap < 0:
            raise ValueError("events must be sorted by timestamp")
        if gap <= self.idle_ms:
            self.active += gap
        self.last = ts
        window = math.floor(self.active / self.window_ms)
        if window != self.window or self.size + size + 1 > self.max_bytes:
            self.window = window
            self.size = 1 + size + 1
            return True
        self.size += size + 1
        return False


def count_chunks(sizes: Iterable[tuple[float, int]], *, window_ms: float = WINDOW_MS, idle_ms: float = IDLE_MS,
                 max_chunk_bytes: int = MAX_CHUNK_BYTES) -> int:
    """How many chunks :func:`iter_chunks` makes of events with these ``(timestamp, size)`` pairs."""
    cutter = _Cutter(window_ms, idle_ms, max_chunk_bytes)
    return sum(cutter.new_chunk(ts, size) for ts, size in sizes)


def iter_chunks(events: Iterable[tuple[float, bytes]], *, window_ms: float = WINDOW_MS, idle_ms: float = IDLE_MS,
                max_chunk_bytes: int = MAX_CHUNK_BYTES, level: int = 6) -> Iterator[Chunk]:
    """Group ``(timestamp_ms, event_json)`` pairs, in time order, into gzip'd chunks.

    :param events: compact JSON of each event with its timestamp, sorted by timestamp.
    :param window_ms: the activity time one chunk covers at most.
    :param idle_ms: pauses longer than this do not count as activity.
    :param max_chunk_bytes: a chunk's JSON array stays under this size (one larger event has its own chunk).
    :param level: zlib compression level (1 fastest .. 9 smallest).
    :raises ValueError: the events are not in time order.
    """
    cutter = _Cutter(window_ms, idle_ms, max_chunk_bytes)
    current: _GzipArray | None = None
    window = 0
    first = last = 0.0
    index = 0
    for ts, body in events:
        if cutter.new_chunk(ts, len(body)):
            if current is not None:
                index += 1
                yield _finish(current, index, window, first, last)
            current = _GzipArray(level)
            window = cutter.window
            first = ts
        assert current is not None
        current.add(body)
        last = ts
    if current is not None:
        index += 1
        yield _finish(current, index, window, first, last)


def _finish(array: _GzipArray, index: int, window: int, first: float, last: float) -> Chunk:
    data = array.finish()
    return Chunk(index=index, window=window, first_timestamp=first, last_timestamp=last,
                 event_count=array.count, raw_size=array.raw_size, data=data)
