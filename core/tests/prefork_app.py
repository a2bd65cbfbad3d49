"""``jobq`` CLI with one extra test plugin, run as a real process by test_prefork.py.

The supervisor re-runs this very command line in each child, so children serve the same queue.
"""

import asyncio
import os

from jobq import QueueSpec, hookimpl
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost


async def work(job):
    await asyncio.sleep(job.data.get("sleep", 0))
    return os.getpid()


class Plugin:
    @hookimpl
    def jobq_queues(self):
        return [QueueSpec(name="pf", handler=work, concurrency=4, reason_codes=("ERR_PF",))]


if __name__ == "__main__":
    cli(obj=Ctx(PluginHost(group="jobq.none").load(extra=[Plugin()])))
