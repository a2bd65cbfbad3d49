"""The metrics plugin: every served queue's series exist at 0 before the first job."""

from jobq import QueueSpec, metrics
from jobq.plugins import PluginHost
from jobq.testing import wait_until
from prometheus_client.parser import text_string_to_metric_families


async def noop(job):
    return None


def _samples():
    from prometheus_client import generate_latest

    text = generate_latest(metrics.REGISTRY).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_series_exported_at_zero_from_start(jobq_harness):
    host = PluginHost(group="jobq.none").load()
    spec = QueueSpec(name="zero-a", handler=noop, reason_codes=("ERR_OWN",), execution="async")
    jobq_harness.start(spec, hooks=host)
    s = _samples()
    assert s[("jobq_jobs_started_total", (("queue", "zero-a"),))] == 0
    assert s[("jobq_jobs_completed_total", (("queue", "zero-a"),))] == 0
    assert s[("jobq_job_wait_seconds_count", (("queue", "zero-a"),))] == 0
    for code in ("ERR_OWN", "ERR_TIMEOUT", "ERR_INVALID_PAYLOAD"):
        assert s[("jobq_jobs_failed_total", (("queue", "zero-a"), ("reason", code)))] == 0
        assert s[("jobq_jobs_retried_total", (("queue", "zero-a"), ("reason", code)))] == 0
    assert s[("jobq_jobs_retried_total", (("queue", "zero-a"), ("reason", "ERR_DEFERRED")))] == 0
    jobq_harness.run(spec, {})  # completed in Redis; the worker counts it once the ack's reply is back
    wait_until(lambda: _samples()[("jobq_jobs_completed_total", (("queue", "zero-a"),))] == 1, 10,
               message="completion counted")


def test_per_job_series_count_exactly_across_threads():
    import threading

    from jobq.metrics import _Local, _LocalCollector, _series

    c = _series.setdefault("zero-threads", _Local("zero-threads"))

    def work():
        for _ in range(20_000):
            c.start(0.002)
            c.complete(2.0)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    families = {f.name: f for f in _LocalCollector().collect()}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples if s.labels.get("queue") == "zero-threads"}
    assert samples[("jobq_jobs_started_total", (("queue", "zero-threads"),))] == 80_000
    assert samples[("jobq_job_wait_seconds_bucket", (("le", "0.001"), ("queue", "zero-threads")))] == 0
    assert samples[("jobq_job_wait_seconds_bucket", (("le", "0.005"), ("queue", "zero-threads")))] == 80_000
    assert samples[("jobq_job_duration_seconds_bucket", (("le", "2.5"), ("queue", "zero-threads")))] == 80_000
    assert samples[("jobq_job_duration_seconds_bucket", (("le", "1.0"), ("queue", "zero-threads")))] == 0
    assert samples[("jobq_job_duration_seconds_count", (("queue", "zero-threads"),))] == 80_000
