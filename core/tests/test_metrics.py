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
