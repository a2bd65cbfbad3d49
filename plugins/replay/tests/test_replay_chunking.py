"""Windows of 30 s of activity, gzip'd JSON arrays, no empty chunks, no chunk per event on sparse input."""

from __future__ import annotations

import gzip
import json

import pytest
from jobq_plugin_replay.chunking import chunk_name, count_chunks, iter_chunks
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
    assert [c.event_count for c in iter_chunks(pairs(events), idle_ms=30_000)] == [2, 2, 1]


def test_a_gap_of_days_makes_no_chunk_at_all() -> None:
    events = [{"type": 4, "timestamp": 0}, {"type": 2, "timestamp": 10},
              {"type": 3, "timestamp": 3 * DAY_MS}, {"type": 3, "timestamp": 3 * DAY_MS + 9_000}]
    chunks = list(iter_chunks(pairs(events)))
    assert [c.event_count for c in chunks] == [4]  # 10 ms + 9 s of activity
    assert unpack(chunks) == [events]


def test_pauses_longer_than_idle_are_not_activity() -> None:
    # 5 s apart: all activity, 6 events per 30 s. 11 s apart: all idle, one chunk.
    busy = [{"type": 3, "timestamp": i * 5_000} for i in range(12)]
    assert [c.event_count for c in iter_chunks(pairs(busy))] == [6, 6]
    quiet = [{"type": 3, "timestamp": i * 11_000} for i in range(100)]
    assert [c.event_count for c in iter_chunks(pairs(quiet))] == [100]
    # activity continues across a pause: 20 s busy, a day idle, 20 s busy -> 30 s + 10 s
    both = [{"type": 3, "timestamp": t} for t in (*range(0, 20_001, 1_000), *range(DAY_MS, DAY_MS + 20_001, 1_000))]
    assert [c.event_count for c in iter_chunks(pairs(both))] == [31, 11]


def test_sparse_events_make_few_chunks_bounded_in_size() -> None:
    """Issue 14: events 31 s apart once made one chunk (one storage object) per event."""
    events = [{"type": 3, "data": {}, "timestamp": 1_700_000_000_000 + i * 31_000} for i in range(5_000)]
    raw = sum(len(encode_event(e, 0)) + 1 for e in events) + 1
    chunks = list(iter_chunks(pairs(events), max_chunk_bytes=16_384))
    assert len(chunks) == -(-raw // 16_384) or len(chunks) == -(-raw // 16_384) + 1
    assert all(c.raw_size <= 16_384 for c in chunks)
    assert min(c.event_count for c in chunks[:-1]) > 300  # no one-event chunks
    assert [e for chunk in unpack(chunks) for e in chunk] == events
    sizes = [(float(e["timestamp"]), len(encode_event(e, 0))) for e in events]
    assert count_chunks(sizes, max_chunk_bytes=16_384) == len(chunks)


def test_an_event_larger_than_the_chunk_limit_has_its_own_chunk() -> None:
    events = [{"type": 3, "timestamp": 1}, {"type": 2, "data": {"x": "y" * 5_000}, "timestamp": 2},
              {"type": 3, "timestamp": 3}]
    chunks = list(iter_chunks(pairs(events), max_chunk_bytes=1_000))
    assert [c.event_count for c in chunks] == [1, 1, 1]
    assert chunks[1].raw_size > 5_000


def test_count_chunks_matches_iter_chunks_on_real_recordings(corpus) -> None:
    for path in sorted(corpus.rglob("*.json")):
        events = json.loads(path.read_text())
        if not all("timestamp" in e for e in events):
            continue
        events.sort(key=lambda e: e["timestamp"])
        for limit in (2_000, 4 * 1024 * 1024):
            sizes = [(float(e["timestamp"]), len(encode_event(e, 0))) for e in events]
            assert count_chunks(sizes, max_chunk_bytes=limit) == len(list(iter_chunks(pairs(events),
                                                                                    max_chunk_bytes=limit)))


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
