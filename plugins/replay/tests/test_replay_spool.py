"""The spool gives events back in stable timestamp order, moving as few as possible."""

from __future__ import annotations

import random

from jobq_plugin_replay.spool import EventSpool


def spool_of(timestamps: list[float], memory_bytes: int = 1 << 20) -> EventSpool:
    spool = EventSpool(memory_bytes)
    for i, ts in enumerate(timestamps):
        spool.append(ts, b'{"i":%d}' % i)
    return spool


def test_in_order_events_come_back_as_they_came() -> None:
    with spool_of([1, 2, 2, 5]) as spool:
        assert spool.in_order
        assert list(spool.ordered()) == [(1, b'{"i":0}'), (2, b'{"i":1}'), (2, b'{"i":2}'), (5, b'{"i":3}')]
        assert spool.out_of_order == 0
        assert len(spool) == 4 and spool.raw_size == 28


def test_one_wild_timestamp_moves_one_event() -> None:
    # video-playback.json in the corpus: one typo'd timestamp (a digit too many) mid-stream
    timestamps = [1_900_000_001 + 500 * i for i in range(40)]
    timestamps.insert(28, 19_000_602_896)
    with spool_of(timestamps) as spool:
        assert not spool.in_order
        out = list(spool.ordered())
        assert spool.out_of_order == 1
        assert [ts for ts, _ in out] == sorted(timestamps)
        assert out[-1] == (19_000_602_896, b'{"i":28}')


def test_any_disorder_gives_a_stable_sort() -> None:
    rng = random.Random(7)
    for trial in range(200):
        n = rng.randint(0, 60)
        timestamps = [float(rng.randint(0, 12)) for _ in range(n)]
        if trial % 3 == 0:
            timestamps.sort()
            for _ in range(rng.randint(1, 3)):
                if n:
                    timestamps[rng.randrange(n)] = float(rng.randint(-5, 20))
        with spool_of(timestamps, memory_bytes=64 if trial % 2 else 1 << 20) as spool:
            out = [(ts, int(body[5:-1])) for ts, body in spool.ordered()]
            expected = sorted(((ts, i) for i, ts in enumerate(timestamps)), key=lambda p: p[0])
            assert out == expected
            assert spool.out_of_order <= sum(1 for a, b in zip(timestamps, sorted(timestamps), strict=True)
                                             if a != b)


def test_reversed_input_moves_all_but_one() -> None:
    with spool_of([5.0, 4.0, 3.0, 2.0, 1.0]) as spool:
        assert [ts for ts, _ in spool.ordered()] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert spool.out_of_order == 4


def test_large_spools_spill_to_a_file_and_read_back() -> None:
    with spool_of([float(i % 1000) for i in range(5000)], memory_bytes=4096) as spool:
        out = list(spool.ordered())
        assert spool.spilled
        assert len(out) == 5000
        assert [ts for ts, _ in out] == sorted(float(i % 1000) for i in range(5000))
        assert out[0][1] == b'{"i":0}' and out[1][1] == b'{"i":1000}'
