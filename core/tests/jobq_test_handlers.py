"""Handlers for tests that run workers in subprocesses. Each start is appended to a ledger file
(``JOBQ_TEST_LEDGER``) outside Redis, so the tests can count starts and completions per job."""

import json
import os
import sys
import time

from jobq import QueueSpec, RateLimited, Schedule


def _ledger(job, event):
    path = os.environ["JOBQ_TEST_LEDGER"]
    line = json.dumps({"id": job.id, "attempt": job.attempt, "token": job.token, "pid": os.getpid(),
                       "event": event, "t": time.time()})
    with open(path, "a") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def sleepy(job):
    _ledger(job, "start")
    time.sleep(job.data.get("sleep", 0.05))
    _ledger(job, "end")
    return {"ok": True}


def poison(job):
    _ledger(job, "start")
    if job.data.get("poison"):
        os._exit(137)
    time.sleep(0.01)
    return {"ok": True}


def cpu_burn(job):
    _ledger(job, "start")
    end = time.time() + job.data.get("seconds", 1)
    x = 0
    while time.time() < end:
        x += 1
    return {"pid": os.getpid()}


def stepper(job):
    """Reports ``steps`` progress steps, then returns (or raises ``fail``)."""
    steps = job.data.get("steps", 5)
    for i in range(1, steps + 1):
        job.progress(f"{i}/{steps}")
    if job.data.get("fail"):
        raise RuntimeError(job.data["fail"])
    return {"steps": steps}


def vendor(job):
    """A call to a vendor whose first answer to a ``trip`` job is 429 with Retry-After."""
    _ledger(job, "start")
    if job.data.get("trip") and job.attempt == 1:
        raise RateLimited(job.data["trip"], key="vendor:acct")
    return {"ok": True}


def chain_step(job):
    """Appends its own id to what its dependencies returned: a chain A->B->C returns [A, B, C]."""
    _ledger(job, "start")
    if job.attempt == 1:
        time.sleep(job.data.get("sleep", 0))
    before = [x for r in job.dependency_results.values() if r for x in r["path"]]
    _ledger(job, "end")
    return {"path": [*before, job.id]}


def sleep_forever(job):
    _ledger(job, "start")
    time.sleep(600)


SPECS = {
    "sleepy": QueueSpec(name="sleepy", handler=sleepy, concurrency=4, retries=3, backoff=0.1),
    "poison": QueueSpec(name="poison", handler=poison, concurrency=2, retries=3, max_stalls=1),
    "cpu": QueueSpec(name="cpu", handler=cpu_burn, concurrency=2, execution="process"),
    "poison1": QueueSpec(name="poison1", handler=poison, concurrency=1, retries=3, max_stalls=1),
    "sleepy1": QueueSpec(name="sleepy1", handler=sleepy, concurrency=1, retries=3, backoff=0.1),
    "fair": QueueSpec(name="fair", handler=sleepy, concurrency=2),
    "rated": QueueSpec(name="rated", handler=sleepy, concurrency=8, rate_limit=(5, 0.4)),
    "gconc": QueueSpec(name="gconc", handler=sleepy, concurrency=4, group_concurrency=2, max_stalls=3),
    "vendor": QueueSpec(name="vendor", handler=vendor, concurrency=4),
    "ticker": QueueSpec(name="ticker", handler=sleepy, concurrency=2,
                        schedules=[Schedule(name="beat", every=1), Schedule(name="all", every=1, catch_up="all")]),
    "chain1": QueueSpec(name="chain1", handler=chain_step, concurrency=2),
    "chain2": QueueSpec(name="chain2", handler=chain_step, concurrency=2),
    "chain3": QueueSpec(name="chain3", handler=chain_step, concurrency=2),
    "forever": QueueSpec(name="forever", handler=sleep_forever, concurrency=2, execution="process"),
}


def main():
    from jobq.config import Settings
    from jobq.worker import Worker

    settings = Settings(**json.loads(sys.argv[1]))
    specs = [SPECS[n] for n in sys.argv[2].split(",")]
    Worker(specs, settings, block_timeout=1.0, presence_interval=0.5).run_forever()


if __name__ == "__main__":
    main()


def whoami(job):
    """The handler process's pid."""
    return os.getpid()
