"""``jobq run`` as users run it, for bench/run_bench.py: the real CLI, every plugin installed in this
environment loaded from its entry point, metrics on, plus one bench plugin serving BENCH_QUEUE
(comma-separated names: one queue each).

    python jobq_run_app.py run [--processes N] [--metrics-port P]
"""

from __future__ import annotations

import os
from typing import Any

from jobq import QueueSpec, hookimpl
from jobq.cli import Ctx, cli
from jobq.plugins import PluginHost
from jobq_worker import handler


class BenchPlugin:
    @hookimpl
    def jobq_queues(self) -> list[QueueSpec]:
        return [QueueSpec(name=name, handler=handler(), concurrency=int(os.environ["BENCH_CONCURRENCY"]))
                for name in os.environ["BENCH_QUEUE"].split(",")]


def main() -> None:
    os.environ.setdefault("REDIS_URL", os.environ["BENCH_REDIS_URL"])
    os.environ.setdefault("JOBQ_PREFIX", os.environ["BENCH_PREFIX"])
    host: Any = PluginHost().load(extra=[BenchPlugin()])
    cli(obj=Ctx(host))


if __name__ == "__main__":
    main()
