"""Streaming the payload: ids, events, size cap, and clear words for bad JSON."""

from __future__ import annotations

import io
import json

import pytest
from jobq_plugin_replay.errors import ReplayRejected
from jobq_plugin_replay.reader import HEAD_BYTES, ReplayReader
from jobq_plugin_replay.samples import payload, synthetic_events


class Unseekable(io.RawIOBase):
    """A stream that cannot tell its size, returning short reads (like a socket)."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        n = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


STREAM = 0  # whole_below=0: always stream with ijson
WHOLE = 10**9  # always parse in one call


@pytest.fixture(params=[STREAM, WHOLE], ids=["stream", "whole"])
def whole_below(request: pytest.FixtureRequest) -> int:
    """Both parsers must accept and refuse the same payloads with the same words."""
    return request.param


def read_all(data: bytes, whole_below: int = STREAM, **kwargs: object) -> tuple[ReplayReader, list]:
    opens = []

    def opener() -> io.BytesIO:
        opens.append(1)
        return io.BytesIO(data)

    reader = ReplayReader(opener, max_bytes=kwargs.pop("max_bytes", 10**9), max_depth=512,
                          whole_below=whole_below, **kwargs)
    reader.start()
    events = list(reader.events())
    reader.opens = len(opens)  # type: ignore[attr-defined]
    return reader, events


def test_ids_and_events_in_one_pass(whole_below: int) -> None:
    events = synthetic_events(500)
    reader, out = read_all(payload(events, "r-9", "p-3"), whole_below)
    assert reader.ids == {"bugReportId": "r-9", "projectId": "p-3"}
    assert out == events
    assert reader.opens == 1  # type: ignore[attr-defined]


def test_ids_after_the_events_take_a_second_pass() -> None:
    events = synthetic_events(50)
    data = json.dumps({"replayData": events, "projectId": "p", "bugReportId": "b"}).encode()
    reader, out = read_all(data)
    assert out == events and reader.ids == {"bugReportId": "b", "projectId": "p"}
    assert reader.opens == 2  # type: ignore[attr-defined]


def test_fractional_numbers_come_back_as_floats(whole_below: int) -> None:
    data = (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":1.5,'
            b'"data":{"x":1e3,"y":-0.25,"n":-4611686018427387904,"s":"\\u00e9\\n"}}]}')
    _, out = read_all(data, whole_below)
    assert out == [{"type": 3, "timestamp": 1.5,
                    "data": {"x": 1000.0, "y": -0.25, "n": -(2**62), "s": "\u00e9\n"}}]


def test_integers_past_64_bits() -> None:
    # yajl (ijson's C backend) refuses them; the one-call parser keeps them exact. JavaScript writes
    # such integers only for numbers past 2**63, which rrweb does not record.
    data = (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":1,'
            b'"n":12345678901234567890123}]}')
    with pytest.raises(ReplayRejected, match="integer overflow"):
        read_all(data, STREAM)
    assert read_all(data, WHOLE)[1][0]["n"] == 12345678901234567890123


def test_small_payloads_take_the_one_call_parser_by_default() -> None:
    events = synthetic_events(100)
    reader = ReplayReader(lambda: io.BytesIO(payload(events)), max_bytes=10**9, max_depth=512)
    reader.start()
    assert reader._whole == events
    big = ReplayReader(lambda: io.BytesIO(payload(synthetic_events(20_000))), max_bytes=10**9, max_depth=512)
    big.start()
    assert big._whole is None and big.size > 1024 * 1024
    big.close()


@pytest.mark.parametrize(("data", "words"), [
    (b'[{"type":4,"timestamp":1}]', "must be a JSON object"),
    (b'{"bugReportId":"b","projectId":"p","replayData":"abc"}', "replayData must be a list"),
    (b'{"bugReportId":"b","projectId":"p","replayData":{"0":{}}}', "replayData must be a list"),
    (b'{"bugReportId":"b","projectId":"p"}', "no replayData"),
    (b'{"bugReportId":"b","projectId":"p","other":1,"replayData":[]}', "unknown key 'other'"),
    (b'{"bugReportId":12,"projectId":"p","replayData":[]}', "bugReportId must be a string"),
    (b'{"projectId":{"x":1},"replayData":[]}', "projectId must be a string"),
    (b'{"replayData":[], "bugReportId": "b"}', "no projectId"),
    (b'', "not valid JSON"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":NaN}]}', "not valid JSON"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":1e999}]}', "not valid JSON"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":1,"t":"\xff"}]}', "not valid JSON"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[{"type":3,"timestamp":1}', "not valid JSON"),
    (b'{"bugReportId":"b","projectId":"p","replayData":[]} trailing', "not valid JSON"),
])
def test_bad_payloads_are_refused_in_plain_words(data: bytes, words: str, whole_below: int) -> None:
    with pytest.raises(ReplayRejected) as info:
        read_all(data, whole_below)
    message = str(info.value)
    assert words in message
    assert info.value.code == "ERR_INVALID_REPLAY"
    assert "\n" not in message and "right here" not in message and len(message) < 160


def test_invalid_json_inside_a_large_payload_does_not_quote_it(whole_below: int) -> None:
    events = synthetic_events(2000)
    events[1500]["data"]["secret"] = "hunter2-password"
    data = payload(events).replace(b'"hunter2-password"', b'"hunter2-password" oops')
    with pytest.raises(ReplayRejected) as info:
        read_all(data, whole_below)
    assert "hunter2" not in str(info.value) and "oops" not in str(info.value)


def test_the_ids_must_come_early_when_they_precede_the_events() -> None:
    data = b'{"bugReportId":"b",' + b" " * HEAD_BYTES + b'"projectId":"p","replayData":[]}'
    with pytest.raises(ReplayRejected, match="replayData must start within"):
        read_all(data)


def test_a_known_size_over_the_cap_is_refused_before_reading(whole_below: int) -> None:
    data = payload(synthetic_events(100))
    with pytest.raises(ReplayRejected) as info:
        read_all(data, whole_below, max_bytes=len(data) - 1)
    assert info.value.code == "ERR_PAYLOAD_TOO_LARGE"
    assert f"is {len(data)} bytes, over REPLAY_MAX_BYTES={len(data) - 1}" in str(info.value)


def test_an_unknown_size_is_capped_while_streaming() -> None:
    data = payload(synthetic_events(3000))
    limit = len(data) // 2
    reader = ReplayReader(lambda: Unseekable(data), max_bytes=limit, max_depth=512)
    reader.start()
    assert reader.size is None
    with pytest.raises(ReplayRejected) as info:
        list(reader.events())
    assert info.value.code == "ERR_PAYLOAD_TOO_LARGE"
    assert reader.bytes_read <= limit + 256 * 1024 + 1000


def test_short_reads_are_fine_and_progress_reaches_one() -> None:
    events = synthetic_events(3000)
    data = payload(events)
    seen: list[float] = []
    reader = ReplayReader(lambda: io.BufferedReader(Unseekable(data, step=777)), max_bytes=10**9,
                          max_depth=512, on_progress=seen.append)
    reader.start()
    reader.size = len(data)  # as storage would report it
    assert list(reader.events()) == events
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_too_deep_is_refused_before_parsing(whole_below: int) -> None:
    data = b'{"bugReportId":"b","projectId":"p","replayData":[' + b"[" * 50_000 + b"]" * 50_000 + b"]}"
    with pytest.raises(ReplayRejected) as info:
        read_all(data, whole_below)
    assert info.value.code == "ERR_NESTING_TOO_DEEP"
