"""Decoding the request body: the same values as ``json.loads``, the same refusals, within a budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jobq_bugreports.body import PARSE_BUDGET, decode, parse, parse_cost
from jobq_bugreports.intake import RequestInvalid

pytestmark = pytest.mark.timeout(30)

CORPORA = Path("/work/shared/corpora/replays")


@pytest.mark.parametrize("text", [
    "{}", "[]", '"x"', "3", "null", '{"a": 1, "a": 2}', ' {\n "title" : "t" , "sessionReplay" : '
    '{ "events" : [ {"x": [1, {"y": null}]} , {} ] , "extra": [1] } } ',
    '{"sessionReplay": {"events": []}}', '{"sessionReplay": {"events": 5}}', '{"sessionReplay": [1]}',
    '{"sessionReplay": {"events": [[1], "a", 2.5, true]}}', '{"k\\u00e9y": "\\"\\\\"}',
])
def test_parse_gives_what_json_loads_gives(text: str) -> None:
    assert parse(text, json.JSONDecoder()) == json.loads(text)


def test_parse_of_real_recordings() -> None:
    for path in [CORPORA / "rrweb-player-demoit-2018.json", *sorted((CORPORA / "rrweb-fixtures").glob("*.json"))]:
        events = json.loads(path.read_text())
        text = json.dumps({"title": "t", "sessionReplay": {"events": events}}, indent=1)
        assert parse(text, json.JSONDecoder()) == json.loads(text), path.name


@pytest.mark.parametrize("text", [
    "", "{", '{"a" 1}', '{"a": 1,}', '{"sessionReplay": {"events": [1,]}}', '{"sessionReplay": {"events": [1 2]}}',
    "{}x", '{"a": 1}}', "{'a': 1}", '{"sessionReplay": {"events": [1], }}', '{"a": 1 "b": 2}',
])
def test_parse_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        parse(text, json.JSONDecoder())


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
