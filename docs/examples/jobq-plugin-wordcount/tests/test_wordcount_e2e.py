import json

import jobq_plugin_wordcount
import pytest
from jobq import InvalidPayload, QueueManager
from jobq.storage import Storage

SPEC = jobq_plugin_wordcount.jobq_queues()[0]


@pytest.fixture
def store(monkeypatch, tmp_path):
    monkeypatch.setenv("STORAGE_URL", str(tmp_path / "storage"))  # read by the handler at run time
    return Storage(str(tmp_path / "storage"))


def test_counts_words(jobq_harness, store):
    store.put("documents/d1/text.txt", b"The cat and the hat")
    job = jobq_harness.run(SPEC, {"documentId": "d1", "topWords": 1}, job_id="wc-d1")
    assert job.state == "completed", job.failure
    assert job.result["words"] == 5 and job.result["distinct"] == 4
    assert json.loads(store.get("documents/d1/wordcount.json"))["top"] == [["the", 2]]


def test_missing_document_fails_once(jobq_harness, store):
    job = jobq_harness.run(SPEC, {"documentId": "nope"})
    assert job.state == "failed"
    assert job.failure.code == "ERR_NO_DOCUMENT" and job.attempts == 1


def test_bad_payload_is_refused_at_enqueue(jobq_settings):
    with QueueManager(jobq_settings, [SPEC]) as qm, pytest.raises(InvalidPayload, match="documentId"):
        qm.add_job("wordcounts", None, {"documentId": "../etc/passwd"})
