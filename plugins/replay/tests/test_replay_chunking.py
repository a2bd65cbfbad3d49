"""Windows of 30 s aligned on the first event, gzip'd JSON arrays, no empty chunks."""

from __future__ import annotations

import gzip
import json

import pytest
from jobq_plugin_replay.chunking import chunk_name, iter_chunks
from jobq_plugin_replay.events import encode_event
from jobq_plugin_replay.samples import synthetic_events

DAY_MS = 86_400_000


def pairs(events: list[dict]) -> list[tuple[float, bytes]]:
    return [(float(e["timestamp"]), encode_event(e, i)) for i, e in enumerate(events)]


def unpack(chunks: list) -> list[list[dict]]:
    return [json.loads(gzip.decompress(c.data)) for c in chunks]


def test_events_are_cut_into_windows_of_thirty_seconds_from_the_first() -> None:
    events = synthetic_events(400, start=1_000, step_ms=250)  # 100 s: windows 0..3
    chunks = list(iter_chunks(pairs(events)))
    assert [c.window for c in chunks] == [0, 1, 2, 3]
    assert [c.index for c in chunks] == [1, 2, 3, 4]
    assert [c.event_count for c in chunks] == [120, 120, 120, 40]
    assert [c.first_timestamp for c in chunks] == [1_000, 31_000, 61_000, 91_000]
    assert chunks[0].last_timestamp == 30_750
    assert [e for chunk in unpack(chunks) for e in chunk] == events


def test_the_boundary_belongs_to_the_next_window() -> None:
    events = [{"type": 3, "timestamp": t} for t in (0, 29_999, 30_000, 59_999.5, 60_000)]
    assert [c.event_count for c in iter_chunks(pairs(events))] == [2, 2, 1]


def test_a_gap_of_days_makes_no_empty_chunks() -> None:
    events = [{"type": 4, "timestamp": 0}, {"type": 2, "timestamp": 10},
              {"type": 3, "timestamp": 3 * DAY_MS}, {"type": 3, "timestamp": 3 * DAY_MS + 29_000}]
    chunks = list(iter_chunks(pairs(events)))
    assert [c.event_count for c in chunks] == [2, 2]
    assert chunks[1].window == 3 * DAY_MS // 30_000
    assert unpack(chunks) == [events[:2], events[2:]]


def test_sizes_and_determinism() -> None:
    events = synthetic_events(300)
    first = list(iter_chunks(pairs(events), level=6))
    again = list(iter_chunks(pairs(events), level=6))
    assert [c.data for c in first] == [c.data for c in again]  # a retry writes identical bytes
    for chunk, body in zip(first, unpack(first), strict=True):
        raw = gzip.decompress(chunk.data)
        assert chunk.raw_size == len(raw) and chunk.size == len(chunk.data)
        assert raw == b"[" + b",".join(encode_event(e, 0) for e in body) + b"]"
    faster = list(iter_chunks(pairs(events), level=1))
    assert sum(c.size for c in faster) > sum(c.size for c in first)


def test_a_large_chunk_is_compressed_while_it_is_built() -> None:
    events = synthetic_events(20_000, step_ms=1)  # 20 s, one window, ~1.8 MB of JSON
    (chunk,) = list(iter_chunks(pairs(events)))
    assert chunk.event_count == 20_000 and chunk.raw_size > 1_500_000
    assert chunk.size < chunk.raw_size / 5
    assert json.loads(gzip.decompress(chunk.data)) == events


def test_unsorted_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="sorted"):
        list(iter_chunks([(5.0, b"{}"), (4.0, b"{}")]))
    assert list(iter_chunks([])) == []


def test_chunk_names() -> None:
    assert chunk_name(1) == "chunk-001.json.gz"
    assert chunk_name(42) == "chunk-042.json.gz"
    assert chunk_name(1234) == "chunk-1234.json.gz"
