"""The smallest third-party plugin: one queue, one handler."""

import os
import time

from jobq import QueueSpec, hookimpl


def work(job):
    time.sleep(job.data.get("sleep", 0))
    job.progress("1/1")
    return {"ok": True, "n": job.data.get("n"), "pid": os.getpid()}


@hookimpl
def jobq_queues():
    return [QueueSpec(name="chaos", handler=work, concurrency=4, retries=3, timeout=30)]
