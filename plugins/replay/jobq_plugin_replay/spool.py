"""Hold a replay's encoded events between validation and upload, and give them back in time order.

The handler validates the whole stream before writing anything to storage (bad input must not
leave half a replay behind), so the events wait somewhere in between: here, as their compact
JSON, in memory up to a threshold and then in a temporary file. Only two numbers per event stay
in memory (timestamp and end offset, 16 bytes), so a 100 MB replay costs a few MB of RAM.

Out-of-order events (clock skew, a typo'd timestamp) are put in order without reading the
bodies into memory: the longest non-decreasing run of timestamps (patience sorting,
O(n log n) on the timestamp array) stays in place, only the events outside it are sorted,
and the two sequences are merged by (timestamp, original position), which is exactly a
stable sort. A single wild timestamp therefore moves one event, not the rest of the replay.
"""

from __future__ import annotations

import heapq
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

_WRITE_AT = 256 * 1024


class EventSpool:
    """Encoded events in arrival order; :meth:`ordered` yields them sorted by timestamp.

    :param memory_bytes: bodies stay in memory up to this many bytes, then go to a temporary file.
    """

    def __init__(self, memory_bytes: int = 4 * 1024 * 1024) -> None:
        # closed by close() / the with block: the spool outlives any single method
        self._file: Any = tempfile.SpooledTemporaryFile(max_size=memory_bytes, prefix="jobq-replay-")  # noqa: SIM115
        self._timestamps = array("d")
        self._ends = array("q")
        self._pending: list[bytes] = []  # bodies batched into one write: fewer calls, same bytes
        self._pending_size = 0
        self._size = 0
        self._last = float("-inf")
        self.in_order = True
        self.out_of_order = 0  # events moved by the sort (known once :meth:`ordered` has started)

    def append(self, timestamp: float, body: bytes) -> None:
        self._pending.append(body)
        self._pending_size += len(body)
        if self._pending_size >= _WRITE_AT:
            self._flush()
        self._size += len(body)
        self._timestamps.append(timestamp)
        self._ends.append(self._size)
        if timestamp < self._last:
            self.in_order = False
        else:
            self._last = timestamp

    def _flush(self) -> None:
        self._file.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_size = 0

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def raw_size(self) -> int:
        """Bytes of encoded event bodies held."""
        return self._size

    @property
    def spilled(self) -> bool:
        """Whether the bodies went to a temporary file."""
        return bool(getattr(self._file, "_rolled", False))

    def ordered(self) -> Iterator[tuple[float, bytes]]:
        """Yield ``(timestamp, body)`` sorted by timestamp; events with equal timestamps keep their order."""
        self._flush()
        f = self._file
        f.seek(0)
        ts = self._timestamps
        ends = self._ends
        if self.in_order:
            self.out_of_order = 0
            start = 0
            for i in range(len(ts)):
                end = ends[i]
                yield ts[i], f.read(end - start)
                start = end
            return
        order = self._order()
        for i in order:
            start = ends[i - 1] if i else 0
            f.seek(start)
            yield ts[i], f.read(ends[i] - start)

    def ordered_sizes(self) -> Iterator[tuple[float, int]]:
        """Yield ``(timestamp, body size)`` in the order of :meth:`ordered`, without reading a body."""
        ts = self._timestamps
        ends = self._ends
        for i in (range(len(ts)) if self.in_order else self._order()):
            yield ts[i], ends[i] - (ends[i - 1] if i else 0)

    def _order(self) -> Iterator[int]:
        ts = self._timestamps
        n = len(ts)
        keep = _longest_non_decreasing(ts)
        moved = sorted((i for i in range(n) if not keep[i]), key=ts.__getitem__)
        self.out_of_order = len(moved)
        kept = (i for i in range(n) if keep[i])
        return heapq.merge(kept, moved, key=lambda i: (ts[i], i))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _longest_non_decreasing(ts: array) -> bytearray:
    """Mark (1) the members of one longest non-decreasing subsequence of ``ts``."""
    n = len(ts)
    tails = array("d")  # tails[k]: smallest last value of a run of length k + 1
    tail_index = array("q")
    previous = array("q", bytes(8 * n))
    for i in range(n):
        t = ts[i]
        if not tails or t >= tails[-1]:
            k = len(tails)
            tails.append(t)
            tail_index.append(i)
        else:
            k = bisect_right(tails, t)
            tails[k] = t
            tail_index[k] = i
        previous[i] = tail_index[k - 1] if k else -1
    keep = bytearray(n)
    i = tail_index[-1] if n else -1
    while i >= 0:
        keep[i] = 1
        i = previous[i]
    return keep
