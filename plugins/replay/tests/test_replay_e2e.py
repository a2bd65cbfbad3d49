"""End to end: the plugin as installed, a real worker (child processes), real Redis, local storage, SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from jobq import InvalidPayload, PayloadTooLarge, QueueManager
from jobq.plugins import PluginHost
from jobq.testing import Harness, delete_prefix, make_test_settings
from jobq_bugreports.store import ReportStore
from jobq_plugin_replay.playback import iter_events, load_manifest
from jobq_plugin_replay.samples import form_recording, synthetic_events

CLAIM_CHECK_BYTES = 64 * 1024


def test_the_plugin_is_found_through_its_entry_point() -> None:
    host = PluginHost().load()
    assert "replay" not in host.failures
    info = host.plugins["replay"]
    assert info.distribution == "jobq-plugin-replay" and info.queues == ["replays"]
    spec = host.specs["replays"]
    assert (spec.concurrency, spec.retries, spec.timeout) == (3, 3, 300)
    assert spec.lazy_payload is True and spec.execution == "process"


@pytest.fixture
def harness(env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A harness whose claim-check threshold is small, so a modest replay goes through storage."""
    monkeypatch.setenv("REPLAY_MAX_BYTES", "1000000")  # read by the worker's child processes
    settings = make_test_settings(tmp_path, claim_check_bytes=CLAIM_CHECK_BYTES)
    h = Harness(settings)
    try:
        yield h
    finally:
        h.close()
        client = redis.Redis.from_url(settings.redis_url)
        try:
            delete_prefix(client, settings.prefix)
        finally:
            client.close()


def data(report_id: str, events: Any) -> dict[str, Any]:
    return {"bugReportId": report_id, "projectId": "web", "replayData": events}


def test_replays_end_to_end(harness: Harness, env: dict[str, Any], corpus: Path) -> None:
    spec = PluginHost().load().specs["replays"]
    harness.start(spec)
    recorded = json.loads((corpus / "rrweb-player-demoit-2018.json").read_text())  # 155 KB, 81 s
    small = synthetic_events(40)
    too_big = synthetic_events(5000, snapshot_every=50, snapshot_nodes=150)
    m = harness.manager
    with pytest.raises(PayloadTooLarge, match="replays"):  # a producer with the plugin refuses at enqueue
        m.add_job("replays", "replay-too-big", data("too-big", too_big))
    bare = QueueManager(harness.settings, strict=False)  # a producer without it: the worker refuses
    jobs = {
        "real": m.add_job("replays", "replay-real", data("real", recorded)),
        "small": m.add_job("replays", "replay-small", data("small", small)),
        "too-big": bare.add_job("replays", "replay-too-big", data("too-big", too_big)),
    }
    bare.shutdown()
    assert jobs["real"].payload_ref and not jobs["small"].payload_ref  # claim-checked vs inline

    done = {name: harness.wait("replays", job.id, timeout=60) for name, job in jobs.items()}
    real, inline, refused = done["real"], done["small"], done["too-big"]
    assert real.state == "completed", real.failure
    assert real.result["eventCount"] == 272 and real.result["chunkCount"] == 3
    assert real.attempts == 1 and real.progress == 100
    assert list(iter_events(env["storage"], "replays/web/real")) == recorded
    assert inline.state == "completed", inline.failure
    assert inline.result["chunkCount"] == 1
    assert load_manifest(env["storage"], "replays/web/small")["eventCount"] == 40

    assert refused.state == "failed" and refused.failure.code == "ERR_PAYLOAD_TOO_LARGE"
    assert refused.attempts == 1  # bad input is not retried
    assert "REPLAY_MAX_BYTES=1000000" in refused.failure.message
    assert not (env["storage_dir"] / "replays" / "web" / "too-big").exists()

    store = ReportStore.from_env()
    try:
        assert store.get_report("real")["metadata"]["replay"]["replayUrl"] == real.result["replayUrl"]
        assert store.get_report("small")["metadata"]["replay"]["eventCount"] == 40
        assert store.get_report("too-big") is None
    finally:
        store.close()


def test_bad_replays_are_refused_at_enqueue(harness: Harness) -> None:
    manager = QueueManager(harness.settings, [PluginHost().load().specs["replays"]])
    try:
        events = synthetic_events(10)
        del events[3]["timestamp"]
        with pytest.raises(InvalidPayload, match=r"replayData\[3\] has no timestamp"):
            manager.add_job("replays", "replay-bad", data("bad", events))
        with pytest.raises(InvalidPayload, match="replayData must be a list"):
            manager.add_job("replays", "replay-bad", data("bad", "[]"))
        with pytest.raises(InvalidPayload, match="bugReportId"):
            manager.add_job("replays", "replay-bad", data("../escape", synthetic_events(3)))
        for value in (float("nan"), float("inf"), {1, 2}, b"bytes"):  # not JSON: the core refuses to encode
            odd = synthetic_events(3)
            odd[2]["data"] = {"value": value}
            with pytest.raises(InvalidPayload, match="not JSON-serialisable"):
                manager.add_job("replays", "replay-bad", data("bad", odd))
        assert manager.get_job("replays", "replay-bad") is None
    finally:
        manager.shutdown()


def test_a_private_replay_end_to_end(harness: Harness, env: dict[str, Any]) -> None:
    """The intake's ``privacy`` field travels through Redis and storage (claim check) to the worker's masker."""
    harness.start(PluginHost().load().specs["replays"])
    events = form_recording()
    padding = [{"type": 3, "data": {"source": 1, "positions": [{"x": i, "y": i, "id": 5, "timeOffset": 0}]},
                "timestamp": events[-1]["timestamp"] + i} for i in range(1, 1500)]  # over the claim check
    privacy = {"allowInputTypes": ["range"], "maskTextAttributes": ["data-private"]}
    with pytest.raises(InvalidPayload, match="password inputs are always masked"):
        harness.manager.add_job("replays", "replay-pw", {**data("pw", events), "privacy": {
            "allowInputTypes": ["password"]}})
    job = harness.manager.add_job("replays", "replay-private", {
        "bugReportId": "private", "projectId": "web", "privacy": privacy, "replayData": events + padding})
    assert job.payload_ref  # claim-checked: the worker streams it
    done = harness.wait("replays", job.id, timeout=60)
    assert done.state == "completed", done.failure
    stored = list(iter_events(env["storage"], "replays/web/private"))
    assert len(stored) == len(events) + len(padding)
    typed = [e["data"]["text"] for e in stored if e["type"] == 3 and e["data"]["source"] == 5]
    assert typed == ["*************", "********", "57", "*", "**", "***********", "************", "**"]
    masking = load_manifest(env["storage"], "replays/web/private")["masking"]
    assert masking["inputEvents"] == 7 and masking["allowInputTypes"] == ["range"]
