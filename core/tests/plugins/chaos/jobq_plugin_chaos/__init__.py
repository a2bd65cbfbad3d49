"""The smallest third-party plugin: one queue, one handler."""

import os

from jobq import QueueSpec, hookimpl


def work(job):
    job.progress("1/1")
    return {"ok": True, "n": job.data.get("n"), "pid": os.getpid()}


@hookimpl
def jobq_queues():
    return [QueueSpec(name="chaos", handler=work, concurrency=4, retries=3, timeout=30)]
