"""Per-job hook dispatch of ``PluginHost``: straight calls, the same contract as pluggy's."""

import logging

from jobq import hookimpl
from jobq.plugins import PluginHost


class Seen:
    def __init__(self):
        self.calls = []

    @hookimpl
    def jobq_job_started(self, queue, wait):
        self.calls.append(("started", queue, wait))

    @hookimpl
    def jobq_job_completed(self, job_id, duration):
        self.calls.append(("completed", job_id, duration))


class Raises:
    @hookimpl
    def jobq_job_started(self, job_id):
        raise RuntimeError("observer broke")


def test_each_impl_gets_only_its_arguments_and_a_raising_one_is_logged(caplog):
    seen = Seen()
    host = PluginHost(group="jobq.none", disabled={"jobq.metrics"}).load(extra=[seen])
    host.pm.register(Raises(), name="raises")  # registering after load clears the dispatch cache
    with caplog.at_level(logging.ERROR):
        host.job_started(queue="q", job_id="j", attempt=1, wait=0.5)
    host.job_completed(queue="q", job_id="j", attempt=1, result=None, duration=0.1)
    host.job_failed(queue="q", job_id="j", attempt=1, code="E", message="m", will_retry=False)
    assert seen.calls == [("started", "q", 0.5), ("completed", "j", 0.1)]
    assert "plugin raises" in caplog.text and "jobq_job_started" in caplog.text


def test_a_wrapper_falls_back_to_pluggy():
    order = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def jobq_job_started(self, job_id):
            order.append("before")
            yield
            order.append("after")

    seen = Seen()
    host = PluginHost(group="jobq.none").load(extra=[seen, Wrapper()])
    assert host._direct_impls("jobq_job_started") is None
    host.job_started(queue="q", job_id="j", attempt=1, wait=0.0)
    assert order == ["before", "after"] and seen.calls == [("started", "q", 0.0)]
    host.pm.unregister(name="wrapper")
    assert host._direct_impls("jobq_job_started") is not None
