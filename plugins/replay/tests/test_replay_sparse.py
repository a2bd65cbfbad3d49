"""Issue 14 point 4: a sparse replay no longer multiplies storage objects; chunks per replay are capped."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import pytest
from jobq import JobFailed
from jobq_bugreports.store import ReportStore
from jobq_plugin_replay.chunking import Chunk
from jobq_plugin_replay.manifest import ManifestWriter
from jobq_plugin_replay.playback import iter_events, load_manifest
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import payload, synthetic_events

FOLDER = "replays/project-1/report-1"


def sparse_payload(count: int, gap_ms: int) -> bytes:
    """The reproduction of the issue, smaller: a Meta, a FullSnapshot, then tiny events ``gap_ms`` apart."""
    t0 = 1_700_000_000_000
    head = (b'{"bugReportId":"report-1","projectId":"project-1","replayData":['
            b'{"type":4,"data":{"href":"https://a.test/","width":800,"height":600},"timestamp":%d},'
            b'{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},"initialOffset":{"left":0,"top":0}},'
            b'"timestamp":%d}' % (t0, t0))
    return head + b"".join(b',{"type":3,"data":{},"timestamp":%d}' % (t0 + i * gap_ms)
                           for i in range(2, count)) + b"]}"


def files(env: dict) -> list[Path]:
    return sorted(p for p in (env["storage_dir"] / FOLDER).iterdir() if p.is_file())


def test_events_31_seconds_apart_make_a_few_full_chunks(env, make_job, monkeypatch) -> None:
    """Before: one chunk per event (20,000 objects here, 1,000,001 in the issue). Now: bounded by size."""
    monkeypatch.setenv("REPLAY_MAX_CHUNK_BYTES", "65536")
    body = sparse_payload(20_000, 31_000)
    job, _ = make_job(opener=lambda: io.BytesIO(body))  # streamed, as a claim-checked payload is
    result = process_replay(job)
    manifest = load_manifest(env["storage"], FOLDER)
    assert result["eventCount"] == 20_000
    assert result["chunkCount"] == manifest["chunkCount"] == len(files(env)) - 1
    assert result["chunkCount"] <= len(body) // 65_536 + 2  # ~12, bounded by REPLAY_MAX_CHUNK_BYTES alone
    assert all(c["rawSize"] <= 65_536 for c in manifest["chunks"])
    assert min(c["eventCount"] for c in manifest["chunks"]) > 100  # no one-event chunks
    assert manifest["idleMs"] == 10_000 and manifest["maxChunkBytes"] == 65_536
    assert sum(1 for _ in iter_events(env["storage"], FOLDER)) == 20_000


def test_too_many_chunks_is_refused_before_anything_is_written(env, make_job, monkeypatch) -> None:
    monkeypatch.setenv("REPLAY_MAX_CHUNKS", "3")
    events = synthetic_events(1000, step_ms=100)  # 100 s of activity: 4 chunks
    with pytest.raises(JobFailed) as info:
        process_replay(make_job(payload(events))[0])
    assert info.value.code == "ERR_TOO_MANY_CHUNKS"
    assert "4 chunks, over REPLAY_MAX_CHUNKS=3" in str(info.value)
    assert not (env["storage_dir"] / FOLDER).exists()
    store = ReportStore.from_env()
    try:
        assert store.get_report("report-1")["metadata"]["replay"]["code"] == "ERR_TOO_MANY_CHUNKS"
    finally:
        store.close()
    monkeypatch.setenv("REPLAY_MAX_CHUNKS", "4")
    assert process_replay(make_job(payload(events))[0])["chunkCount"] == 4


def test_the_manifest_is_written_with_bounded_memory(tmp_path: Path) -> None:
    """20,000 chunk entries (a 2.5 MB manifest) go through the writer holding only totals."""
    chunk = Chunk(index=1, window=0, first_timestamp=1.0, last_timestamp=2.0, event_count=3, raw_size=300,
                  data=b"x" * 100)
    tracemalloc.start()
    try:
        with ManifestWriter(bug_report_id="r", project_id="p", window_ms=30_000, idle_ms=10_000,
                            max_chunk_bytes=4096, gzip_level=6) as writer:
            base = tracemalloc.get_traced_memory()[0]
            for i in range(1, 20_001):
                writer.add(Chunk(index=i, window=i, first_timestamp=i * 1000.0, last_timestamp=i * 1000.0 + 5,
                                 event_count=chunk.event_count, raw_size=chunk.raw_size, data=chunk.data))
            summary = writer.finish(out_of_order=0, masking={"inputEvents": 0})
            peak = tracemalloc.get_traced_memory()[1] - base
            text = Path(writer.path).read_bytes()
        assert not Path(writer.path).exists()  # removed on exit
    finally:
        tracemalloc.stop()
    assert len(text) > 2_000_000 and peak < 200_000
    manifest = json.loads(text)
    assert manifest["chunkCount"] == summary["chunkCount"] == len(manifest["chunks"]) == 20_000
    assert manifest["eventCount"] == 60_000 and manifest["totalSize"] == 2_000_000
    assert manifest["largestGapMs"] == 995 and manifest["durationMs"] == 19_999_005
    assert manifest["chunks"][-1] == {"index": 20_000, "file": "chunk-20000.json.gz", "firstTimestamp": 20_000_000,
                                      "lastTimestamp": 20_000_005, "eventCount": 3, "size": 100, "rawSize": 300}
