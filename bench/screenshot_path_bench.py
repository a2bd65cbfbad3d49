"""A screenshot through the whole plugin path against plain Pillow doing the same image work.

Run by hand from the repository's environment:

    .venv/bin/python bench/screenshot_path_bench.py [--jobs 20] [--repeat 7]

* **Pillow**: in this process, the data URL base64-decoded, ``Image.open`` + ``load``, the alpha
  dropped, then the same two WebP encodes the plugin writes (the original at the plugin's quality
  and method, the 320x240 thumbnail resized from the centre crop as the plugin does): best and
  median of ``--repeat``.
* **Pillow, memory kept**: the same, after ``imaging.reuse_image_memory()`` (what the plugin's
  handler process does once: Pillow and glibc keep freed image memory for the next image), so
  the plugin can also be compared like for like.
* **plugin**: ``jobq run --queue screenshots -c screenshots=1`` (one handler process, as one core
  of Pillow above) drains ``--jobs`` jobs added in bulk beforehand; each job decodes, encodes,
  writes both files to local storage and records the outcome in a SQLite report store. Per job:
  first finished job to last, divided by the jobs in between (start-up excluded).

The input is a 1920x1080 RGBA PNG as a browser canvas exports it (``samples.ui_screenshot``).
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis
from jobq import QueueManager, Settings
from jobq.testing import delete_prefix
from jobq_bugreports.store import ReportStore
from jobq_plugin_screenshot import imaging, jobq_queues, samples, settings
from PIL import Image


def plain_pillow(url: str, quality: int, method: int, thumb: tuple[int, int]) -> tuple[int, int]:
    raw = base64.b64decode(url.split(",", 1)[1])
    im = Image.open(io.BytesIO(raw))
    im.load()
    im = im.convert("RGB")
    out = io.BytesIO()
    im.save(out, "WEBP", quality=quality, method=method)
    tw, th = thumb
    crop_w = im.height * tw / th  # a 16:9 capture is wider than 4:3: trim the sides equally
    box = ((im.width - crop_w) / 2, 0.0, (im.width + crop_w) / 2, float(im.height))
    small = im.resize(thumb, Image.Resampling.LANCZOS, box=box, reducing_gap=2.0)
    tout = io.BytesIO()
    small.save(tout, "WEBP", quality=quality, method=method)
    return len(out.getvalue()), len(tout.getvalue())


def timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    url = samples.data_url(samples.encode(samples.ui_screenshot(1920, 1080, seed=1, mode="RGBA")))
    cfg = settings.current()
    thumb = cfg.thumbnail_size
    print(f"load average {os.getloadavg()[0]:.1f}; input {len(url):,} chars of data URL; "
          f"{cfg.output_format} q{cfg.quality} method {imaging.WEBP_METHOD}")
    best, median = timed(lambda: plain_pillow(url, cfg.quality, imaging.WEBP_METHOD, thumb), args.repeat)
    print(f"plain Pillow          best {best * 1000:7.1f} ms  median {median * 1000:7.1f} ms")
    pbest, pmedian = timed(lambda: imaging.process(url, cfg), args.repeat)
    print(f"imaging.process       best {pbest * 1000:7.1f} ms  median {pmedian * 1000:7.1f} ms")
    imaging.reuse_image_memory()  # from here on, this process keeps image memory as a handler process does
    kbest, kmedian = timed(lambda: plain_pillow(url, cfg.quality, imaging.WEBP_METHOD, thumb), args.repeat)
    print(f"Pillow, memory kept   best {kbest * 1000:7.1f} ms  median {kmedian * 1000:7.1f} ms")

    tmp = Path(tempfile.mkdtemp(prefix="jobq-shot-bench-"))
    prefix = f"jbs-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "JOBQ_PREFIX": prefix, "STORAGE_URL": str(tmp / "objects"),
           "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}", "OTEL_SDK_DISABLED": "true"}
    s = Settings.from_env(env)
    store = ReportStore(env["DATABASE_URL"])
    for i in range(args.jobs):
        store.create_report(project_id="bench", title="bench", report_id=f"r{i}")
    store.close()
    manager = QueueManager(s, jobq_queues())
    manager.add_jobs("screenshots", [(f"j{i}", {"bugReportId": f"r{i}", "projectId": "bench",
                                               "screenshotData": url}) for i in range(args.jobs)])
    proc = subprocess.Popen([sys.executable, "-m", "jobq.cli", "--log-level", "WARNING", "run", "--queue",
                             "screenshots", "-c", "screenshots=1"], env=env)
    try:
        stamps: list[float] = []
        deadline = time.monotonic() + 600
        seen = 0
        while seen < args.jobs and time.monotonic() < deadline:
            m = manager.get_queue_metrics("screenshots")
            done = m["completed"] + m["failed"]
            stamps += [time.monotonic()] * (done - seen)
            seen = done
            time.sleep(0.002)
        failed = manager.get_queue_metrics("screenshots")["failed"]
    finally:
        proc.terminate()
        proc.wait(60)
        client = redis.Redis.from_url(s.redis_url)
        delete_prefix(client, prefix)
        client.close()
        manager.close()
        shutil.rmtree(tmp, ignore_errors=True)
    per_job = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    print(f"plugin (jobq run)     {per_job * 1000:7.1f} ms per job over {len(stamps)} jobs ({failed} failed)")
    print(f"ratio plugin / plain Pillow: {per_job / median:.2f} (median), {per_job / best:.2f} (best)")
    print(f"ratio plugin / Pillow with memory kept: {per_job / kmedian:.2f} (median), {per_job / kbest:.2f} (best)")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
