"""The payload class, structured by the core's converter as at enqueue."""

from __future__ import annotations

import time

import pytest
from jobq import InvalidPayload
from jobq.serialization import structure_payload
from jobq_plugin_replay.payload import ReplayJob
from jobq_plugin_replay.samples import synthetic_events


def test_a_valid_payload_is_structured_without_copying_the_events() -> None:
    events = synthetic_events(10)
    job = structure_payload({"bugReportId": "b-1", "projectId": "p_1", "replayData": events}, ReplayJob)
    assert job.bug_report_id == "b-1" and job.project_id == "p_1"
    assert job.replay_data is events
    assert "<10 events>" in repr(job)


@pytest.mark.parametrize(("data", "words"), [
    ({"bugReportId": "b", "projectId": "p", "replayData": "[1,2]"}, "replayData must be a list"),
    ({"bugReportId": "b", "projectId": "p", "replayData": {"0": {}}}, "replayData must be a list"),
    ({"bugReportId": "b", "projectId": "p", "replayData": []}, "replayData is empty"),
    ({"bugReportId": "b", "projectId": "p", "replayData": [{"type": 4, "timestamp": 1}]}, "at least 2"),
    ({"bugReportId": "b", "projectId": "p", "replayData": [{"type": 4, "timestamp": 1}, {"type": 2}]},
     "replayData[1] has no timestamp"),
    ({"bugReportId": "../x", "projectId": "p", "replayData": []}, "bugReportId"),
    ({"bugReportId": "b", "projectId": "a/b", "replayData": []}, "projectId"),
    ({"bugReportId": "b", "projectId": "p"}, "replayData"),
    ({"bugReportId": "b", "projectId": "p", "replayData": [], "extra": 1}, "extra"),
])
def test_bad_payloads_are_refused_at_enqueue_naming_the_problem(data: dict, words: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        structure_payload(data, ReplayJob)
    assert words in str(info.value)


def test_the_event_limit_applies_at_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLAY_MAX_EVENTS", "5")
    with pytest.raises(InvalidPayload, match="over REPLAY_MAX_EVENTS=5"):
        structure_payload({"bugReportId": "b", "projectId": "p", "replayData": synthetic_events(6)}, ReplayJob)


def test_one_hundred_thousand_events_structure_in_well_under_a_second() -> None:
    data = {"bugReportId": "b", "projectId": "p", "replayData": synthetic_events(100_000)}
    started = time.perf_counter()
    structure_payload(data, ReplayJob)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"took {elapsed:.3f}s"
