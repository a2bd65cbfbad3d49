"""Producers deployed before workers: a bare ``QueueManager()`` knows the installed plugins' queues."""

import jobq.plugins
import jobq.queue
import pytest
from jobq import InvalidPayload, UnknownQueue
from jobq.queue import QueueManager


@pytest.fixture
def count_lookups(monkeypatch):
    monkeypatch.setattr(jobq.queue, "_INSTALLED", {})
    calls = []
    real = jobq.plugins.PluginHost.load

    def load(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jobq.plugins.PluginHost, "load", load)
    return calls


def test_bare_manager_enqueues_on_an_installed_plugins_queue_before_any_worker(jobq_settings, count_lookups):
    tiny_png = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR4nGNgYAAAAAMAAS"
                "sdk3sAAAAASUVORK5CYII=")
    with QueueManager(jobq_settings) as qm:  # no specs=, and no worker ever announced a queue here
        job = qm.add_job("screenshots", None, {"bugReportId": "r1", "projectId": "p1", "screenshotData": tiny_png})
        assert qm.get_job_status("screenshots", job.id) == "waiting"
        with pytest.raises(InvalidPayload, match="screenshotData"):  # validated as the worker will
            qm.add_job("screenshots", None, {"bugReportId": "r1", "projectId": "p1", "screenshotData": "x"})
        for i in range(3):
            qm.add_job("screenshots", None, {"bugReportId": f"r{i}", "projectId": "p1", "screenshotData": tiny_png})
        with pytest.raises(UnknownQueue, match="screenshot'"):
            qm.add_job("screenshot", None, {})
    with QueueManager(jobq_settings) as again:
        again.add_job("screenshots", None, {"bugReportId": "r9", "projectId": "p1", "screenshotData": tiny_png})
    assert len(count_lookups) == 1  # looked up once per process, on the first unknown queue only


def test_known_queues_never_trigger_the_lookup(jobq_settings, count_lookups):
    from jobq_plugin_screenshot import jobq_queues

    with QueueManager(jobq_settings, jobq_queues()) as qm:
        qm.add_job("screenshots", None, {"bugReportId": "r1", "projectId": "p1",
                                         "screenshotData": "data:image/png;base64,iVBORw0KGgo="})
    assert count_lookups == []
