"""The handler against S3 (a moto server on loopback, through s3fs): keys, URLs, stale chunks."""

from __future__ import annotations

import pytest
from jobq.storage import Storage
from jobq_plugin_replay.playback import iter_events
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import payload, synthetic_events

BUCKET = "replay-bucket"


@pytest.fixture
def s3(jobq_s3) -> str:
    jobq_s3.make_bucket(BUCKET)
    return jobq_s3.endpoint


def test_replay_on_s3(env, make_job, s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    monkeypatch.setenv("STORAGE_URL", f"s3://{BUCKET}/tenant-a")
    monkeypatch.setenv("STORAGE_PUBLIC_URL", "https://cdn.example.test/media")
    events = synthetic_events(600, step_ms=100)  # 60 s
    monkeypatch.setenv("REPLAY_CHUNK_SECONDS", "10")
    first = process_replay(make_job(payload(events))[0])
    assert first["chunkCount"] == 6
    monkeypatch.setenv("REPLAY_CHUNK_SECONDS", "30")
    result = process_replay(make_job(payload(events), attempt=2)[0])
    assert result["replayUrl"] == "https://cdn.example.test/media/replays/project-1/report-1/"
    assert result["metadataUrl"] == "https://cdn.example.test/media/replays/project-1/report-1/metadata.json"
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]
    sizes = {o["Key"]: o["Size"] for o in listing}
    prefix = "tenant-a/replays/project-1/report-1/"
    assert sorted(sizes) == [prefix + "chunk-001.json.gz", prefix + "chunk-002.json.gz", prefix + "metadata.json"]
    assert sizes[prefix + "chunk-001.json.gz"] + sizes[prefix + "chunk-002.json.gz"] == result["totalSize"]
    storage = Storage(f"s3://{BUCKET}/tenant-a")
    assert list(iter_events(storage, "replays/project-1/report-1")) == events
