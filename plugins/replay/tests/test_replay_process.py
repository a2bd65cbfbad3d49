"""The handler on real recordings and hostile input, called directly (the end-to-end tests add Redis)."""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from jobq import JobFailed
from jobq.errors import is_retryable, reason_code
from jobq_bugreports.store import ReportStore
from jobq_plugin_replay import reader
from jobq_plugin_replay.masking import INPUT_TYPES
from jobq_plugin_replay.playback import iter_events, load_manifest
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import payload, synthetic_events

FOLDER = "replays/project-1/report-1"
ALLOW_ALL = {"allowInputTypes": sorted(INPUT_TYPES - {"password"})}
DAY_MS = 86_400_000


@pytest.fixture(params=["stream", "whole"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each parser: ijson streaming, or one call for small payloads (the default below 1 MiB)."""
    monkeypatch.setattr(reader, "WHOLE_PARSE_BYTES", 0 if request.param == "stream" else 1024 * 1024)
    return request.param


def stable_sorted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e["timestamp"])


def stored_files(env: dict[str, Any]) -> list[str]:
    root: Path = env["storage_dir"]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_every_recording_in_the_corpus(env, make_job, corpus: Path, corpus_rows: list[dict[str, str]],
                                       parser: str) -> None:
    assert len(corpus_rows) == 29
    store = ReportStore.from_env()
    try:
        for n, row in enumerate(corpus_rows):
            events = json.loads((corpus / row["file"]).read_text())
            report_id = f"corpus-{n}"
            # every input type allowed, so that the stored events must equal the recording
            job, progress = make_job(payload(events, report_id, "corpus", privacy=ALLOW_ALL))
            if int(row["events_without_timestamp"] or 0):
                with pytest.raises(JobFailed) as info:
                    process_replay(job)
                assert info.value.code == "ERR_INVALID_TIMESTAMP", row["file"]
                assert "replayData[0] has no timestamp" in str(info.value)
                assert not (env["storage_dir"] / "replays" / "corpus" / report_id).exists()
                continue
            result = process_replay(job)
            folder = f"replays/corpus/{report_id}"
            manifest = load_manifest(env["storage"], folder)
            where = row["file"]
            assert result["eventCount"] == manifest["eventCount"] == int(row["events"]), where
            stamps = sorted(e["timestamp"] for e in events)
            if all(b - a <= 10_000 for a, b in pairwise(stamps)):  # no pause: cut exactly as by wall time
                assert result["chunkCount"] == manifest["chunkCount"] == int(row["chunks_of_30s"]), where
            else:
                assert result["chunkCount"] == manifest["chunkCount"] <= int(row["chunks_of_30s"]), where
            assert manifest["firstTimestamp"] == int(row["first_timestamp"]), where
            assert manifest["lastTimestamp"] == int(row["last_timestamp"]), where
            assert manifest["durationMs"] == int(row["duration_ms"]), where
            assert manifest["outOfOrderEvents"] == int(row["out_of_order_events"]), where
            assert manifest["reordered"] is (int(row["out_of_order_events"]) > 0), where
            assert result["totalSize"] == sum(c["size"] for c in manifest["chunks"]), where
            assert list(iter_events(env["storage"], folder)) == stable_sorted(events), where
            assert progress[-1] == 100 and progress == sorted(progress), where
            assert store.get_report(report_id)["metadata"]["replay"]["metadataUrl"] == result["metadataUrl"]
    finally:
        store.close()


def test_typo_timestamp_is_sorted_and_said_in_the_manifest(env, make_job, corpus: Path, parser: str) -> None:
    events = json.loads((corpus / "rrweb-fixtures" / "video-playback.json").read_text())
    job, _ = make_job(payload(events))
    result = process_replay(job)
    manifest = load_manifest(env["storage"], FOLDER)
    assert manifest["reordered"] is True and manifest["outOfOrderEvents"] == 1
    # 0-30 s, then 30-40 s with the lone event 198 days later: a pause is no activity, and costs no chunk
    assert result["chunkCount"] == 2
    assert [c["eventCount"] for c in manifest["chunks"]] == [33, 10]
    assert manifest["chunks"][1]["lastTimestamp"] == manifest["lastTimestamp"] == 19_000_602_896
    assert manifest["largestGapMs"] < 10_000
    assert manifest["durationMs"] > 197 * DAY_MS
    assert stored_files(env) == [f"{FOLDER}/chunk-00{i}.json.gz" for i in (1, 2)] + [f"{FOLDER}/metadata.json"]


def test_result_manifest_and_bug_report(env, make_job) -> None:
    events = synthetic_events(1000, step_ms=100)  # 100 s: 4 chunks
    store = ReportStore.from_env()
    store.create_report(project_id="project-1", title="Checkout broken", report_id="report-1")
    job, progress = make_job(payload(events), job_id="replay-report-1")
    result = process_replay(job)
    root = env["storage_dir"].resolve()
    assert result == {
        "replayUrl": f"file://{root}/{FOLDER}/",
        "metadataUrl": f"file://{root}/{FOLDER}/metadata.json",
        "chunkCount": 4,
        "totalSize": result["totalSize"],
        "eventCount": 1000,
    }
    manifest = load_manifest(env["storage"], FOLDER)
    assert manifest["format"] == "jobq-rrweb-chunks" and manifest["version"] == 2
    assert (manifest["bugReportId"], manifest["projectId"]) == ("report-1", "project-1")
    assert manifest["chunkWindowMs"] == 30_000 and manifest["compression"] == "gzip"
    assert [c["file"] for c in manifest["chunks"]] == [f"chunk-00{i}.json.gz" for i in range(1, 5)]
    assert [c["eventCount"] for c in manifest["chunks"]] == [300, 300, 300, 100]
    assert manifest["durationMs"] == 99_900 and manifest["reordered"] is False
    assert manifest["totalRawSize"] > 5 * manifest["totalSize"] > 0
    assert list(iter_events(env["storage"], FOLDER)) == events
    recorded = store.get_report("report-1")
    assert recorded["title"] == "Checkout broken"
    replay = recorded["metadata"]["replay"]
    assert {k: replay[k] for k in result} == result
    assert replay["status"] == "ready" and replay["jobId"] == "replay-report-1" and replay["durationMs"] == 99_900
    assert 2 <= len(progress) <= 22 and progress[-1] == 100
    store.close()


def test_public_url(env, make_job, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_PUBLIC_URL", "https://cdn.example.test/r/")
    job, _ = make_job(payload(synthetic_events(10)))
    result = process_replay(job)
    assert result["replayUrl"] == f"https://cdn.example.test/r/{FOLDER}/"
    assert result["metadataUrl"] == f"https://cdn.example.test/r/{FOLDER}/metadata.json"


def test_disorder_and_gaps_of_days(env, make_job, parser: str) -> None:
    events = synthetic_events(600, step_ms=200)  # 120 s
    later = synthetic_events(50, start=events[-1]["timestamp"] + 3 * DAY_MS, step_ms=1000)
    shuffled = events[:300] + later + events[300:]  # a later session arrived in the middle
    shuffled[10], shuffled[20] = shuffled[20], shuffled[10]
    job, _ = make_job(payload(shuffled))
    result = process_replay(job)
    manifest = load_manifest(env["storage"], FOLDER)
    # 120 s (4 windows of activity), the 3-day pause is no activity, then 49 s more: the last window
    # of the first session continues with the next session's first event, then 2 more windows
    assert result["chunkCount"] == 4 + 2
    assert manifest["reordered"] is True and manifest["outOfOrderEvents"] == 2 + 50
    assert list(iter_events(env["storage"], FOLDER)) == stable_sorted(shuffled)


def test_a_retry_rewrites_and_drops_chunks_a_longer_run_left(env, make_job, monkeypatch) -> None:
    events = synthetic_events(300, step_ms=100)  # 30 s
    monkeypatch.setenv("REPLAY_CHUNK_SECONDS", "2")
    process_replay(make_job(payload(events))[0])
    assert len(stored_files(env)) == 15 + 1
    monkeypatch.setenv("REPLAY_CHUNK_SECONDS", "30")
    result = process_replay(make_job(payload(events), attempt=2)[0])
    assert result["chunkCount"] == 1
    assert stored_files(env) == [f"{FOLDER}/chunk-001.json.gz", f"{FOLDER}/metadata.json"]
    assert list(iter_events(env["storage"], FOLDER)) == events


MEASURE = """
import json, sys
from jobq import JobContext
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import payload, synthetic_events

def kib(field):
    # VmHWM/VmRSS belong to this process image (ru_maxrss would carry the parent's peak across exec)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

def job(**kw):
    return JobContext(id="j", queue="replays", name="", attempt=1, created_at=0.0, token="t", **kw)

process_replay(job(raw=payload(synthetic_events(300), "warm-up")))
try:
    with open("/proc/self/clear_refs", "w") as fh:  # restart the peak from here (Linux, own process)
        fh.write("5")
except OSError:
    pass
before = kib("VmRSS")
result = process_replay(job(opener=lambda: open(sys.argv[1], "rb")))
print(json.dumps({"grew_kib": kib("VmHWM") - before, "result": result}))
"""


def test_claim_checked_payload_streams_with_little_memory(env, monkeypatch) -> None:
    monkeypatch.setenv("REPLAY_SPOOL_MEMORY_BYTES", str(256 * 1024))
    raw = payload(synthetic_events(10_000, step_ms=50, snapshot_every=40, snapshot_nodes=400))
    path = env["tmp"] / "payload.json"
    path.write_bytes(raw)
    assert len(raw) > 15_000_000
    # A fresh interpreter, so its peak RSS is this replay's and not an earlier test's.
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["result"]["eventCount"] == 10_000 and out["result"]["chunkCount"] == 17
    # Parsed whole, the events would take ten times the payload; streamed, a few blocks and one chunk.
    assert out["grew_kib"] * 1024 < len(raw) / 5, out
    manifest = load_manifest(env["storage"], FOLDER)
    assert manifest["totalRawSize"] == sum(c["rawSize"] for c in manifest["chunks"]) > len(raw) * 0.9


@pytest.mark.parametrize(("data", "code"), [
    (payload([]), "ERR_EMPTY_REPLAY"),
    (payload([{"type": 4, "timestamp": 1}]), "ERR_REPLAY_TOO_SHORT"),
    (payload("not a list"), "ERR_INVALID_REPLAY"),
    (payload([{"type": 4, "timestamp": 1}, 7]), "ERR_INVALID_REPLAY"),
    (payload([{"type": 4, "timestamp": 1}, {"type": 2, "timestamp": "soon"}]), "ERR_INVALID_TIMESTAMP"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":4,"timestamp":NaN}]}', "ERR_INVALID_REPLAY"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":4,"timestamp":1},', "ERR_INVALID_REPLAY"),
    (b"\x1f\x8b\x08\x00 not json", "ERR_INVALID_REPLAY"),
    (payload(synthetic_events(5), bug_report_id="../../etc"), "ERR_UNSAFE_ID"),
    (payload(synthetic_events(5), project_id="a.b"), "ERR_UNSAFE_ID"),
    (b'{"replayData":' + payload(synthetic_events(5))[:-1] + b',"bugReportId":"x/y","projectId":"p"}',
     "ERR_INVALID_REPLAY"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"]}",
     "ERR_NESTING_TOO_DEEP"),
])
def test_bad_input_fails_at_once_and_writes_nothing(env, make_job, data: bytes, code: str, parser: str) -> None:
    job, _ = make_job(data)
    with pytest.raises(Exception) as info:  # UnsafeKey is no JobFailed: the reason code is what counts
        process_replay(job)
    assert reason_code(info.value) == code, str(info.value)
    assert is_retryable(info.value) is False
    assert stored_files(env) == []


def test_size_and_count_limits(env, make_job, monkeypatch) -> None:
    raw = payload(synthetic_events(200))
    monkeypatch.setenv("REPLAY_MAX_BYTES", str(len(raw) - 1))
    with pytest.raises(JobFailed) as info:
        process_replay(make_job(raw)[0])
    assert info.value.code == "ERR_PAYLOAD_TOO_LARGE" and "REPLAY_MAX_BYTES" in str(info.value)
    monkeypatch.setenv("REPLAY_MAX_BYTES", str(len(raw)))
    monkeypatch.setenv("REPLAY_MAX_EVENTS", "199")
    with pytest.raises(JobFailed) as info:
        process_replay(make_job(raw)[0])
    assert info.value.code == "ERR_PAYLOAD_TOO_LARGE" and "REPLAY_MAX_EVENTS" in str(info.value)
    assert stored_files(env) == []
    monkeypatch.setenv("REPLAY_MAX_EVENTS", "200")
    assert process_replay(make_job(raw)[0])["eventCount"] == 200


def test_a_report_of_another_project_is_refused_before_writing(env, make_job) -> None:
    store = ReportStore.from_env()
    store.create_report(project_id="other-project", title="t", report_id="report-1")
    with pytest.raises(JobFailed) as info:
        process_replay(make_job(payload(synthetic_events(5)))[0])
    assert info.value.code == "ERR_PROJECT_MISMATCH" and info.value.retryable is False
    assert stored_files(env) == []
    assert "replay" not in store.get_report("report-1")["metadata"]
    store.close()


def test_storage_failure_is_retryable(env, make_job) -> None:
    env["storage_dir"].mkdir(parents=True, exist_ok=True)
    (env["storage_dir"] / "replays").write_text("a file where a folder should be")
    with pytest.raises(JobFailed) as info:
        process_replay(make_job(payload(synthetic_events(5)))[0])
    assert info.value.code == "ERR_STORAGE" and info.value.retryable is True
    assert "replays/project-1/report-1/chunk-001.json.gz" in str(info.value)


def test_a_refusal_is_recorded_on_the_bug_report(env, make_job) -> None:
    events = synthetic_events(20)
    events[5]["timestamp"] = "yesterday"
    with pytest.raises(JobFailed, match=r"replayData\[5\]\.timestamp is a string"):
        process_replay(make_job(payload(events), job_id="replay-report-1")[0])
    store = ReportStore.from_env()
    try:
        assert store.get_report("report-1")["metadata"]["replay"] == {
            "status": "failed", "code": "ERR_INVALID_TIMESTAMP", "jobId": "replay-report-1",
            "message": "replayData[5].timestamp is a string, not a number of milliseconds"}
    finally:
        store.close()
