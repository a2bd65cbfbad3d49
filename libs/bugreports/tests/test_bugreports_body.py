"""Decoding the request body: the same values as ``json.loads``, the same refusals, within a budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jobq import RawJSON, rawjson
from jobq_bugreports.body import PARSE_BUDGET, decode, parse_cost
from jobq_bugreports.intake import RequestInvalid

pytestmark = pytest.mark.timeout(30)

CORPORA = Path("/work/shared/corpora/replays")


def _plain(value: Any) -> Any:
    """``value`` with the replay's events parsed back from their RawJSON."""
    replay = value.get("sessionReplay") if isinstance(value, dict) else None
    if isinstance(replay, dict) and isinstance(replay.get("events"), RawJSON):
        return {**value, "sessionReplay": {**replay, "events": json.loads(replay["events"].data)}}
    return value


@pytest.fixture(params=[3, 1 << 20], ids=["3-byte window", "1 MiB window"])
def window(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(rawjson, "WINDOW", request.param)
    return request.param


@pytest.mark.parametrize("text", [
    "{}", "[]", '"x"', "3", "null", '{"a": 1, "a": 2}', ' {\n "title" : "t" , "sessionReplay" : '
    '{ "events" : [ {"x": [1, {"y": null}]} , {} ] , "extra": [1] } } ',
    '{"sessionReplay": {"events": []}}', '{"sessionReplay": {"events": 5}}', '{"sessionReplay": [1]}',
    '{"k\\u00e9y": "\\"\\\\", "t": "\u00e9\U0001f600", "n": -5e-08}',
])
def test_decode_gives_what_json_loads_gives(text: str, window: int) -> None:
    assert _plain(decode(bytearray(text.encode()))) == json.loads(text)


def test_events_come_back_as_the_bytes_sent(window: int) -> None:
    events = '[ {"type": 4, "timestamp": 1} ,\n {"type": 2, "t": "\u00e9"} ]'
    value = decode(bytearray(f'{{"title": "t", "sessionReplay": {{"events": {events}}}}}'.encode()))
    assert value["sessionReplay"]["events"].data == events.encode()


def test_decode_of_real_recordings(window: int) -> None:
    for path in [CORPORA / "rrweb-player-demoit-2018.json", *sorted((CORPORA / "rrweb-fixtures").glob("*.json"))]:
        events = json.loads(path.read_text())
        text = json.dumps({"title": "t", "sessionReplay": {"events": events}}, indent=1)
        assert _plain(decode(bytearray(text.encode()))) == json.loads(text), path.name


def test_events_that_are_not_objects_are_named() -> None:
    with pytest.raises(RequestInvalid) as bad:
        decode(bytearray(b'{"sessionReplay": {"events": [{"type": 1}, [1], "a"]}}'))
    assert bad.value.errors == [{"field": "sessionReplay.events[1]", "message": "must be an object"}]


@pytest.mark.parametrize("text", [
    "", "{", '{"a" 1}', '{"a": 1,}', '{"sessionReplay": {"events": [{},]}}', '{"sessionReplay": {"events": [{} {}]}}',
    "{}x", '{"a": 1}}', "{'a': 1}", '{"sessionReplay": {"events": [{}], }}', '{"a": 1 "b": 2}',
])
def test_decode_refuses_what_json_loads_refuses(text: str, window: int) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(RequestInvalid, match="is not valid JSON"):
        decode(bytearray(text.encode()))


def test_decode_empties_the_buffer_and_names_bad_json() -> None:
    raw = bytearray(b'{"title": "t"}')
    assert decode(raw) == {"title": "t"} and raw == b""
    with pytest.raises(RequestInvalid) as bad:
        decode(bytearray(b'{"title": "t",\n "x": }'))
    message = "is not valid JSON (Expecting value at line 2 column 7)"
    assert bad.value.errors == [{"field": "(body)", "message": message}]
    with pytest.raises(RequestInvalid, match="not UTF-8"):
        decode(bytearray(b'{"title": "\xff"}'))
    with pytest.raises(RequestInvalid, match="nested too deeply"):
        decode(bytearray(b'{"sessionReplay": {"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}}"))


def test_parse_cost_bounds_what_objects_take() -> None:
    real = (CORPORA / "rrweb-player-demoit-2018.json").read_bytes()
    assert parse_cost(real) < PARSE_BUDGET * len(real)  # real recordings pass
    flood = b"[" + b",".join([b"{}"] * 1000) + b"]"
    assert parse_cost(flood) > PARSE_BUDGET * len(flood)  # empty objects do not
    lists = b"[" + b",".join([b"[]"] * 1000) + b"]"
    assert parse_cost(lists) > PARSE_BUDGET * len(lists)
