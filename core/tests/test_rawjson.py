"""RawJSON and the windowed reader: the values json.loads gives, at every window size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobq import RawJSON
from jobq.queue import _dumps
from jobq.rawjson import TextWindow

CORPORA = Path("/work/shared/corpora/replays")
ITEMS = [
    {"type": 4, "timestamp": 1700000000000, "data": {"href": "https://x.example/é"}},
    {"type": 3, "timestamp": 1.5e3, "data": {"text": "emoji \U0001f600 and \\ \" quotes", "n": -12345678901234567890}},
    [], {}, "a string with ünïcode", 12345678901234567890123, -0.5e-7, True, None, [1, [2, [3]]],
]


@pytest.mark.parametrize("window", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_items_are_what_json_loads_gives_at_any_window(window: int, indent: int | None) -> None:
    data = json.dumps(ITEMS, indent=indent, ensure_ascii=False).encode()
    view = TextWindow(data, window=window)
    assert view.peek() == "["
    assert list(view.array_items()) == ITEMS
    assert view.peek() == "" and view.offset() == len(data)


def test_items_of_real_recordings() -> None:
    for path in [CORPORA / "rrweb-player-demoit-2018.json", *sorted((CORPORA / "rrweb-fixtures").glob("*.json"))]:
        data = path.read_bytes()
        assert list(RawJSON(data).items()) == json.loads(data), path.name


@pytest.mark.parametrize("text", ["[1,]", "[1 2]", "[", "[1", '["a]', "{}", "[1] x", "[tru]"])
def test_bad_arrays_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        list(RawJSON(text.encode()).items())


def test_errors_count_lines_and_columns_from_the_start() -> None:
    data = b'[1,\n 2,\n 3 4]'
    with pytest.raises(json.JSONDecodeError) as bad:
        list(TextWindow(data, window=2).array_items())
    assert (bad.value.lineno, bad.value.colno) == (3, 4)


def test_not_utf8_is_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(RawJSON(b'["\xff"]').items())


def test_offsets_cut_the_bytes_of_a_value() -> None:
    data = '{"a": "é\U0001f600", "events": [ {"x": 1} , 2 ] }'.encode()
    view = TextWindow(data, window=3)
    view.take("{", "")
    assert view.key() == "a" and view.value() == "é\U0001f600"
    view.take(",", "")
    assert view.key() == "events"
    view.peek()
    start = view.offset()
    assert list(view.array_items()) == [{"x": 1}, 2]
    assert view.slice(start, view.offset()) == b'[ {"x": 1} , 2 ]'


def test_the_encoder_splices_raw_json_as_it_is() -> None:
    raw = RawJSON(json.dumps(ITEMS, ensure_ascii=False).encode())
    out = _dumps({"id": "a", "items": raw, "more": [raw, "\x00jobq-raw-0\x00"]}, "job data")
    assert isinstance(out, bytes) and raw.data in out
    assert json.loads(out) == {"id": "a", "items": ITEMS, "more": [ITEMS, "\x00jobq-raw-0\x00"]}
    assert _dumps({"plain": 1}, "job data") == '{"plain":1}'  # no RawJSON: the fast path, a str


def test_a_job_carries_raw_json_to_its_handler(jobq_harness) -> None:
    """Inline and claim-checked alike, the handler sees the parsed value."""
    from jobq import QueueSpec

    spec = QueueSpec(name="raw", handler=lambda job: {"count": len(job.data["items"]), "first": job.data["items"][0]})
    small = RawJSON(json.dumps(ITEMS).encode())
    large = RawJSON(json.dumps([ITEMS] * 2000).encode())
    assert len(large) > jobq_harness.settings.claim_check_bytes  # claim-checked to storage
    for raw, count in ((small, len(ITEMS)), (large, 2000)):
        job = jobq_harness.run(spec, {"items": raw})
        assert job.state == "completed", job.failure
        assert job.result == {"count": count, "first": json.loads(raw.data)[0]}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_JSON, max_size=6), window=st.integers(1, 16), indent=st.sampled_from([None, 1]),
       ascii_only=st.booleans())
def test_any_json_array_reads_back_at_any_window(items: list, window: int, indent: int | None,
                                                  ascii_only: bool) -> None:
    data = json.dumps(items, indent=indent, ensure_ascii=ascii_only).encode()
    view = TextWindow(data, window=window)
    assert view.peek() == "["
    assert list(view.array_items()) == items
    assert view.offset() == len(data)


def test_a_syntax_error_does_not_widen_the_window_to_the_rest() -> None:
    data = b'[1, {"a" 1}, "' + b"x" * 100_000 + b'"]'
    view = TextWindow(data, window=64)
    with pytest.raises(json.JSONDecodeError, match="delimiter"):
        list(view.array_items())
    assert len(view.text) <= 64  # refused where it stands, not after reading 100 kB more
    cut = b'[1, "' + b"x" * 100 + b'"]'  # a string cut by the window is read on
    assert list(TextWindow(cut, window=64).array_items()) == [1, "x" * 100]
