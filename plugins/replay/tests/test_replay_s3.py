"""The handler against S3 (a moto server on loopback, through s3fs): keys, URLs, stale chunks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobq.storage import Storage
from jobq_plugin_replay.playback import iter_events
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import payload, synthetic_events

BUCKET = "replay-bucket"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


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
