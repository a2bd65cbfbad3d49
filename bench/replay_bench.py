"""Replay plugin benchmark: the ``replays`` handler on 1,000 and 100,000 rrweb events.

    .venv/bin/python bench/replay_bench.py [--events 100000] [--span-minutes 60] [--repeat 9] [--skip-levels]
    .venv/bin/python bench/replay_bench.py --sparse 1000000 [--gap-seconds 31]
    .venv/bin/python bench/replay_bench.py --masking [--repeat 5]

The replays are the real rrweb-player demo recording (shared/corpora/replays, 272 events, 155 KB,
one 48 KB FullSnapshot) repeated back to back, its timeline squeezed so that the whole replay
spans ``--span-minutes``: 1,000 events make ~0.6 MB, 100,000 events ~58 MB.

Each pipeline figure comes from a fresh interpreter that calls the handler directly (local
storage and an SQLite bug-report store in a temporary folder, no Redis): wall time (median of
``--repeat`` for the small replay, one run for the large one), MB/s of JSON payload, the peak RSS
of that process and how much the run added to it. The large payload is read from a file the way
a claim-checked payload is read from storage, so it is never in memory as a whole.

``--sparse N`` runs only the sparse case of issue 14: N tiny events ``--gap-seconds`` apart (a
Meta and a FullSnapshot first), written to a file without building the list, handled as a
claim-checked payload; it prints the objects and bytes written, the manifest's size, the time
and the peak RSS of the handler's process.

``--masking`` runs only the masking cost: the demo recording tiled 125 times (34,000 events,
125 FullSnapshots), plus the same with a form typed into (every 10th event an input event on a
text field): the masker alone on the parsed events, then the whole handler with masking and
with a no-op masker, each in a fresh interpreter (median of ``--repeat``).

Then, unless ``--skip-levels``: every gzip level on the large replay's chunks (time, MB/s, size),
which is how the default level was chosen, and orjson against ``json.dumps`` for re-encoding.
The machine is shared: figures are indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPUS = Path(os.environ.get("JOBQ_SHARED_DIR", "/work/shared")) / "corpora" / "replays"
RECORDING = CORPUS / "rrweb-player-demoit-2018.json"


def tiled_events(count: int, span_minutes: float) -> list[dict]:
    """The real recording repeated to ``count`` events, timestamps squeezed to span ``span_minutes``."""
    base = json.loads(RECORDING.read_text())
    t0 = base[0]["timestamp"]
    tile_ms = base[-1]["timestamp"] - t0 + 1000
    tiles = -(-count // len(base))
    scale = span_minutes * 60_000 / (tiles * tile_ms)
    events = []
    for k in range(tiles):
        for e in base:
            if len(events) == count:
                return events
            e = dict(e)
            e["timestamp"] = t0 + round((k * tile_ms + e["timestamp"] - t0) * scale)
            events.append(e)
    return events


def write_payload(path: Path, count: int, span_minutes: float) -> int:
    data = json.dumps({"bugReportId": f"bench-{count}", "projectId": "bench",
                       "replayData": tiled_events(count, span_minutes)}, separators=(",", ":")).encode()
    path.write_bytes(data)
    return len(data)


def write_sparse_payload(path: Path, count: int, gap_ms: int) -> int:
    """``count`` events ``gap_ms`` apart, streamed to ``path`` (37 bytes per event, as in issue 14)."""
    t0 = 1_700_000_000_000
    with open(path, "wb") as fh:
        fh.write(b'{"bugReportId":"sparse","projectId":"bench","replayData":['
                 b'{"type":4,"data":{"href":"https://a.test/","width":800,"height":600},"timestamp":%d},'
                 b'{"type":2,"data":{"node":{"type":0,"childNodes":[],"id":1},'
                 b'"initialOffset":{"left":0,"top":0}},"timestamp":%d}' % (t0, t0))
        block = []
        for i in range(2, count):
            block.append(b',{"type":3,"data":{},"timestamp":%d}' % (t0 + i * gap_ms))
            if len(block) == 10_000:
                fh.write(b"".join(block))
                block.clear()
        fh.write(b"".join(block) + b"]}")
        return fh.tell()


def sparse(args: argparse.Namespace, tmp: Path) -> None:
    storage = tmp / "storage"
    env = {**os.environ, "STORAGE_URL": str(storage), "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}"}
    path = tmp / "sparse.json"
    size = write_sparse_payload(path, args.sparse, int(args.gap_seconds * 1000))
    out = run_child(path, 1, False, env)
    files = [p for p in (storage / "replays" / "bench" / "sparse").rglob("*") if p.is_file()]
    manifest = next((p.stat().st_size for p in files if p.name == "metadata.json"), 0)
    r = out["result"]
    print(f"sparse replay: {args.sparse:,} events {args.gap_seconds:g} s apart, payload {size / 1e6:.1f} MB")
    stored = sum(p.stat().st_size for p in files)
    print(f"  objects written {len(files):,} ({r.get('chunkCount')} chunks + manifest), bytes stored "
          f"{stored / 1e6:.1f} MB (chunks {r.get('totalSize', 0) / 1e6:.1f} MB, manifest {manifest / 1e6:.2f} MB)")
    print(f"  time {out['times'][0]:.1f} s, peak RSS {out['peak_kib'] / 1024:.0f} MB "
          f"(+{(out['peak_kib'] - out['baseline_kib']) / 1024:.0f} MB over the idle child)")


def masking(args: argparse.Namespace, tmp: Path) -> None:
    from jobq_plugin_replay.masking import Masker
    from jobq_plugin_replay.samples import form_recording

    base = json.loads(RECORDING.read_text())
    events = tiled_events(len(base) * 125, 125 * 82 / 60)  # 34,000 events over the demo's real pace
    form = form_recording()[:2]
    typed = []
    for i, e in enumerate(events):  # the same, with a form in each snapshot and every 10th event typed
        if e["type"] == 2:
            typed.append({**form[1], "timestamp": e["timestamp"]})
        elif i % 10 == 0:
            typed.append({"type": 3, "data": {"source": 5, "text": f"typed text {i}", "isChecked": False,
                                              "id": 10}, "timestamp": e["timestamp"]})
        else:
            typed.append(e)
    env = {**os.environ, "STORAGE_URL": str(tmp / "storage"), "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}"}
    print(f"{'recording':<44} {'masker alone':>13} {'handler masked':>15} {'no-op masker':>13} {'cost':>7}")
    cases = (("demo tiled x125 (34,000 events)", events), ("same with a form, every 10th typed", typed))
    for label, recording in cases:
        alone = []
        for _ in range(args.repeat):
            copy = json.loads(json.dumps(recording))
            masker = Masker()
            started = time.perf_counter()
            for e in copy:
                masker.mask(e)
            alone.append(time.perf_counter() - started)
        path = tmp / "masking.json"
        size = path.write_bytes(json.dumps({"bugReportId": "masking", "projectId": "bench",
                                            "replayData": recording}, separators=(",", ":")).encode())
        masked = statistics.median(run_child(path, args.repeat, False, env)["times"])
        plain = statistics.median(run_child(path, args.repeat, False, {**env, "BENCH_NO_MASKING": "1"})["times"])
        print(f"{label:<44} {statistics.median(alone) * 1000:>11.0f}ms {masked * 1000:>13.0f}ms "
              f"{plain * 1000:>11.0f}ms {(masked - plain) / plain:>+7.1%}   ({size / 1e6:.1f} MB, "
              f"{masker.input_values} values, {masker.input_events} input events masked)")


# -- child: one scenario in a fresh interpreter ------------------------------------------
def child(path: str, repeat: int, inline: bool) -> None:
    from jobq import JobContext
    from jobq_plugin_replay import process
    from jobq_plugin_replay.process import process_replay
    from jobq_plugin_replay.samples import payload, synthetic_events

    if os.environ.get("BENCH_NO_MASKING"):  # the baseline of --masking: a masker that does nothing
        class NoMasking(process.Masker):
            def mask(self, event: dict) -> None:
                pass

        process.Masker = NoMasking

    def run() -> tuple[float, dict]:
        if inline:
            raw = Path(path).read_bytes()
            job = JobContext(id="bench", queue="replays", name="", attempt=1, created_at=0.0, token="t", raw=raw)
        else:
            job = JobContext(id="bench", queue="replays", name="", attempt=1, created_at=0.0, token="t",
                             opener=lambda: open(path, "rb"))  # noqa: SIM115 (the handler closes it)
        started = time.perf_counter()
        result = process_replay(job)
        return time.perf_counter() - started, result

    process_replay(JobContext(id="w", queue="replays", name="", attempt=1, created_at=0.0, token="t",
                    raw=payload(synthetic_events(300), "warm-up")))
    try:
        with open("/proc/self/clear_refs", "w") as fh:  # restart the peak RSS from here
            fh.write("5")
    except OSError:
        pass
    baseline = _status_kib("VmRSS")
    times, result = [], {}
    for _ in range(repeat):
        elapsed, result = run()
        times.append(elapsed)
    print(json.dumps({"times": times, "result": result, "baseline_kib": baseline, "peak_kib": _status_kib("VmHWM")}))


def _status_kib(field: str) -> int:
    """From /proc/self/status: unlike ru_maxrss, VmHWM is this process image's own peak, not the parent's."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def run_child(path: Path, repeat: int, inline: bool, env: dict[str, str]) -> dict:
    args = [sys.executable, __file__, "--child", str(path), "--repeat", str(repeat)]
    if inline:
        args.append("--inline")
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- parent --------------------------------------------------------------------------------
def pipeline(args: argparse.Namespace, tmp: Path) -> None:
    env = {**os.environ, "STORAGE_URL": str(tmp / "storage"), "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}"}
    print(f"{'replay':<34} {'payload':>9} {'chunks':>6} {'stored':>9} {'time':>10} {'MB/s':>6} "
          f"{'peak RSS':>9} {'RSS added':>9}")
    for count, repeat, inline in ((1000, args.repeat, True), (args.events, 1, False)):
        path = tmp / f"replay-{count}.json"
        size = write_payload(path, count, args.span_minutes * count / args.events)
        out = run_child(path, repeat, inline, env)
        t = statistics.median(out["times"])
        r = out["result"]
        how = "inline" if inline else "streamed from a file"
        print(f"{count:>7,} events ({how:<20}) {size / 1e6:>7.2f}MB {r['chunkCount']:>6} "
              f"{r['totalSize'] / 1e6:>7.2f}MB {t * 1000:>8.1f}ms {size / 1e6 / t:>6.1f} "
              f"{out['peak_kib'] / 1024:>7.1f}MB {(out['peak_kib'] - out['baseline_kib']) / 1024:>7.1f}MB")
        if repeat > 1:
            print(f"{'':>34} min {min(out['times']) * 1000:.1f} ms, max {max(out['times']) * 1000:.1f} ms "
                  f"over {repeat} runs")
    corpus_times = []
    for f in sorted(CORPUS.rglob("*.json")):
        events = json.loads(f.read_text())
        if not all("timestamp" in e for e in events):
            continue
        p = tmp / "corpus.json"
        p.write_text(json.dumps({"bugReportId": "corpus", "projectId": "bench", "replayData": events}))
        corpus_times.append(statistics.median(run_child(p, 3, True, env)["times"]))
    print(f"corpus: {len(corpus_times)} real recordings, median {statistics.median(corpus_times) * 1000:.1f} ms, "
          f"max {max(corpus_times) * 1000:.1f} ms per replay")


def levels_and_encoders(args: argparse.Namespace) -> None:
    import orjson
    from jobq_plugin_replay.chunking import iter_chunks
    from jobq_plugin_replay.events import check_events, encode_event
    from jobq_plugin_replay.spool import EventSpool

    events = tiled_events(args.events, args.span_minutes)
    started = time.perf_counter()
    check_events(events, 10**7)
    print(f"\nenqueue validation of {len(events):,} events: {(time.perf_counter() - started) * 1000:.1f} ms")

    started = time.perf_counter()
    bodies = [orjson.dumps(e) for e in events]
    t_orjson = time.perf_counter() - started
    started = time.perf_counter()
    for e in events:
        json.dumps(e, separators=(",", ":"))
    t_json = time.perf_counter() - started
    raw = sum(len(b) for b in bodies)
    print(f"re-encoding {raw / 1e6:.1f} MB: orjson {t_orjson * 1000:.0f} ms, json.dumps {t_json * 1000:.0f} ms "
          f"({t_json / t_orjson:.0f}x)")

    with EventSpool() as spool:
        for i, e in enumerate(events):
            spool.append(float(e["timestamp"]), encode_event(e, i))
        del events, bodies
        print(f"\ngzip level on the {args.events:,}-event replay's 30 s chunks ({raw / 1e6:.1f} MB of JSON):")
        print(f"{'level':>5} {'time':>8} {'MB/s':>6} {'stored':>9} {'ratio':>6}")
        for level in range(1, 10):
            started = time.perf_counter()
            size = sum(c.size for c in iter_chunks(spool.ordered(), level=level))
            t = time.perf_counter() - started
            print(f"{level:>5} {t * 1000:>6.0f}ms {raw / 1e6 / t:>6.0f} {size / 1e6:>7.2f}MB {size / raw:>6.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--span-minutes", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--skip-levels", action="store_true")
    ap.add_argument("--sparse", type=int, metavar="N", help="only the sparse case: N events --gap-seconds apart")
    ap.add_argument("--gap-seconds", type=float, default=31.0)
    ap.add_argument("--masking", action="store_true", help="only the masking cost on 34,000 events")
    ap.add_argument("--child")
    ap.add_argument("--inline", action="store_true")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.repeat, args.inline)
        return
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as tmp:
        if args.sparse:
            sparse(args, Path(tmp))
            return
        if args.masking:
            masking(args, Path(tmp))
            return
        pipeline(args, Path(tmp))
    if not args.skip_levels:
        levels_and_encoders(args)


if __name__ == "__main__":
    main()
