"""What makes an event acceptable, and its compact encoding."""

from __future__ import annotations

import json
import time

import pytest
from jobq_plugin_replay.errors import ReplayRejected
from jobq_plugin_replay.events import check_count, check_event, check_events, encode_event
from jobq_plugin_replay.samples import synthetic_events


@pytest.mark.parametrize("timestamp", [0, 1_700_000_000_000, 1_900_000_001.5, -5])
def test_numeric_timestamps_are_accepted(timestamp: float) -> None:
    assert check_event({"type": 3, "timestamp": timestamp, "data": {}}, 0) == float(timestamp)


@pytest.mark.parametrize(("event", "code", "words"), [
    ({"type": 3, "data": {}}, "ERR_INVALID_TIMESTAMP", "replayData[7] has no timestamp"),
    ({"type": 3, "timestamp": None}, "ERR_INVALID_TIMESTAMP", "has no timestamp"),
    ({"type": 3, "timestamp": "1700000000000"}, "ERR_INVALID_TIMESTAMP", "is a string"),
    ({"type": 3, "timestamp": True}, "ERR_INVALID_TIMESTAMP", "is a boolean"),
    ({"type": 3, "timestamp": float("nan")}, "ERR_INVALID_TIMESTAMP", "out of range"),
    ({"type": 3, "timestamp": float("inf")}, "ERR_INVALID_TIMESTAMP", "out of range"),
    ({"type": 3, "timestamp": 10**30}, "ERR_INVALID_TIMESTAMP", "out of range"),
    ({"timestamp": 1}, "ERR_INVALID_REPLAY", "type is missing"),
    ({"type": "3", "timestamp": 1}, "ERR_INVALID_REPLAY", "type is missing or not an integer"),
    ([1, 2], "ERR_INVALID_REPLAY", "replayData[7] is a list, not an event object"),
    ("event", "ERR_INVALID_REPLAY", "is a string"),
    (None, "ERR_INVALID_REPLAY", "is a null"),
])
def test_bad_events_are_refused_with_a_reason(event: object, code: str, words: str) -> None:
    with pytest.raises(ReplayRejected) as info:
        check_event(event, 7)
    assert info.value.code == code
    assert words in str(info.value)
    assert info.value.retryable is False


def test_counts() -> None:
    with pytest.raises(ReplayRejected) as info:
        check_count(0, 10)
    assert info.value.code == "ERR_EMPTY_REPLAY"
    with pytest.raises(ReplayRejected) as info:
        check_count(1, 10)
    assert info.value.code == "ERR_REPLAY_TOO_SHORT"
    with pytest.raises(ReplayRejected) as info:
        check_count(11, 10)
    assert info.value.code == "ERR_PAYLOAD_TOO_LARGE"
    check_count(2, 10)


def test_a_list_is_required() -> None:
    for value in ("[]", {"0": {}}, None, (1, 2)):
        with pytest.raises(ReplayRejected) as info:
            check_events(value, 100)
        assert info.value.code == "ERR_INVALID_REPLAY"
        assert "must be a list" in str(info.value)


def test_one_hundred_thousand_events_validate_well_under_a_second() -> None:
    events = synthetic_events(100_000)
    started = time.perf_counter()
    check_events(events, 1_000_000)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"validation took {elapsed:.3f}s"


def test_the_first_bad_event_is_named() -> None:
    events = synthetic_events(50)
    del events[31]["timestamp"]
    with pytest.raises(ReplayRejected, match=r"replayData\[31\] has no timestamp"):
        check_events(events, 100)


def test_encoding_round_trips_what_orjson_refuses() -> None:
    odd = {"type": 3, "timestamp": 1, "data": {"big": 2**70, "lone": "\ud800x", "f": 0.1, "é": "ü"}}
    assert json.loads(encode_event(odd, 0)) == odd
    deep: object = 1
    for _ in range(300):  # past orjson's 255 levels, within the standard library's reach
        deep = [deep]
    event = {"type": 3, "timestamp": 1, "data": deep}
    assert json.loads(encode_event(event, 0)) == event


def test_encoding_is_compact_and_keeps_key_order() -> None:
    event = {"type": 3, "data": {"b": 1, "a": [1.5, None, True]}, "timestamp": 1700000000000, "sessionId": "s"}
    assert encode_event(event, 0) == b'{"type":3,"data":{"b":1,"a":[1.5,null,true]},"timestamp":1700000000000,' \
                                     b'"sessionId":"s"}'


def test_nesting_beyond_the_interpreter_is_refused() -> None:
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ReplayRejected) as info:
        encode_event({"type": 3, "timestamp": 1, "data": deep}, 4)
    assert info.value.code == "ERR_NESTING_TOO_DEEP"
