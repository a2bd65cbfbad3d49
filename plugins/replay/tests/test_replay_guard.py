"""The nesting guard: exact depth outside strings, long keys, whatever the block boundaries."""

from __future__ import annotations

import json
import random
import resource

import pytest
from jobq_plugin_replay.errors import ReplayRejected
from jobq_plugin_replay.guard import MAX_KEY_BYTES, NestingGuard


def feed(data: bytes, block: int, max_depth: int = 10**6) -> NestingGuard:
    guard = NestingGuard(max_depth)
    for i in range(0, len(data), block):
        guard.feed(data[i:i + block])
    guard.feed(b"", final=True)
    return guard


def reference_depth(data: bytes) -> int:
    """Character-by-character depth outside strings: slow and obviously right."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in data.decode():
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


TRICKY_STRINGS = ["a[b", '\\"]{', "\\\\", 'q"', "}}]]", '\\\\\\"' * 3, "", "[[[[", "\\", "é[ü"]


def random_value(rng: random.Random, depth: int = 0) -> object:
    r = rng.random()
    if depth > 10 or r < 0.3:
        return rng.choice([1, 2.5, None, True, *TRICKY_STRINGS])
    if r < 0.65:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(TRICKY_STRINGS) + str(i): random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


def test_depth_matches_a_reference_scanner_for_any_block_size() -> None:
    rng = random.Random(20240601)
    for _ in range(80):
        doc = json.dumps(random_value(rng), ensure_ascii=rng.random() < 0.5).encode()
        expected = reference_depth(doc)
        for block in (1, 2, 3, 7, 64, 4096):
            guard = feed(doc, block)
            assert (guard.deepest, guard.depth) == (expected, 0), (doc, block)


def test_real_recordings_are_shallow(corpus) -> None:
    data = (corpus / "rrweb-player-demoit-2018.json").read_bytes()
    guard = feed(data, 4096, max_depth=64)
    assert guard.deepest == reference_depth(data)
    assert 10 < guard.deepest < 64


@pytest.mark.parametrize("block", [1, 100, 65536])
def test_too_deep_is_refused(block: int) -> None:
    doc = b'{"replayData":[{"type":3,"timestamp":1,"data":' + b"[" * 600 + b"]" * 600 + b"}]}"
    with pytest.raises(ReplayRejected) as info:
        feed(doc, block, max_depth=512)
    assert info.value.code == "ERR_NESTING_TOO_DEEP"
    assert feed(doc, block, max_depth=603).deepest == 603


def test_a_hundred_thousand_levels_are_refused_at_once_with_little_memory() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    doc = b'{"replayData":[' + b'{"a":[' * 100_000 + b"1" + b"]}" * 100_000 + b"]}"
    with pytest.raises(ReplayRejected, match="REPLAY_MAX_DEPTH=512"):
        feed(doc, 256 * 1024, max_depth=512)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB


@pytest.mark.parametrize("separator", [":", " :", "\n\t : "])
@pytest.mark.parametrize("length", [MAX_KEY_BYTES - 1, MAX_KEY_BYTES, 5000])
def test_long_keys_are_refused_wherever_the_blocks_split_them(separator: str, length: int) -> None:
    doc = ('{"a":[{"' + "k" * length + '"' + separator + '1}],"v":"' + "x" * 5000 + '"}').encode()
    for block in (1, 5, 100, 600, 10**6):
        if length >= MAX_KEY_BYTES:
            with pytest.raises(ReplayRejected, match="key longer than"):
                feed(doc, block)
        else:
            assert feed(doc, block).deepest == 3


def test_long_values_and_escaped_quotes_are_not_keys() -> None:
    value = "x" * 10_000 + '\\":' + "y" * 600
    doc = ('{"a":["' + value + '", "' + "z" * 700 + '"],"b":"' + "w" * 700 + '"}').encode()
    for block in (1, 7, 333, 10**6):
        assert feed(doc, block).deepest == 2
