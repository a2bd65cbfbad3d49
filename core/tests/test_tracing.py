"""OpenTelemetry traces: the producer's span, the enqueue and the handler (with its HTTP calls) share
one trace; a real ``OTLP/HTTP`` export from a worker process configured only by ``OTEL_*``."""

import http.server
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading

import attrs
import pytest
from jobq import QueueSpec, tracing
from jobq.outbound import OutboundPolicy, async_http_client
from jobq.queue import QueueManager
from jobq.testing import wait_until

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.trace import SpanKind

HERE = os.path.dirname(os.path.abspath(__file__))


class _Ok(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_GET(self):
        self.send_response(204)
        self.end_headers()

    def do_POST(self):
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _Ok.bodies = []
    yield srv
    srv.shutdown()


@pytest.fixture
def spans(jobq_spans):
    return jobq_spans


def test_producer_worker_and_http_call_share_one_trace(jobq_harness, spans, server):
    port = server.server_address[1]
    policy = OutboundPolicy(allow_networks=[ipaddress.ip_network("127.0.0.1/32")])

    async def call_out(job):
        async with async_http_client(policy) as client:
            r = await client.get(f"http://127.0.0.1:{port}/hook?token=s3cret")
        return {"status": r.status_code}

    spec = QueueSpec(name="traced", handler=call_out)
    jobq_harness.start(spec)
    with tracing.TRACER.start_as_current_span("POST /api/v1/reports") as request:
        jobq_harness.manager.add_job("traced", "t1", {})
    assert jobq_harness.wait("traced", "t1").result == {"status": 204}
    wait_until(lambda: any(s.name == "GET" for s in spans.get_finished_spans()), 5)
    wait_until(lambda: any(s.name == "process traced" for s in spans.get_finished_spans()), 5)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    send, process, get = by_name["send traced"], by_name["process traced"], by_name["GET"]
    trace_id = request.get_span_context().trace_id
    assert {send.context.trace_id, process.context.trace_id, get.context.trace_id} == {trace_id}
    assert send.parent.span_id == request.get_span_context().span_id and send.kind == SpanKind.PRODUCER
    assert process.parent.span_id == send.context.span_id and process.kind == SpanKind.CONSUMER
    assert get.parent.span_id == process.context.span_id and get.kind == SpanKind.CLIENT
    assert dict(send.attributes) == {"messaging.system": "jobq", "messaging.destination.name": "traced",
                                     "messaging.operation.type": "send", "messaging.operation.name": "send",
                                     "messaging.message.id": "t1"}
    assert process.attributes["messaging.message.id"] == "t1" and process.attributes["jobq.job.attempt"] == 1
    assert process.attributes["jobq.job.outcome"] == "completed"
    assert get.attributes["url.full"] == f"http://127.0.0.1:{port}/hook"  # no query: it may carry tokens
    assert get.attributes["http.response.status_code"] == 204
    # the trace context is not part of the job as callers see it
    assert jobq_harness.manager.get_job("traced", "t1").options.retries is None


def test_failed_attempts_are_error_spans(jobq_harness, spans):
    def boom(job):
        raise ValueError("nope")

    jobq_harness.run(QueueSpec(name="tboom", handler=boom, retries=1, backoff=0.01), {}, job_id="b1")
    wait_until(lambda: len([s for s in spans.get_finished_spans() if s.name == "process tboom"]) == 2, 5)
    outcomes = [(s.attributes["jobq.job.attempt"], s.attributes["jobq.job.outcome"], s.status.status_code.name)
                for s in spans.get_finished_spans() if s.name == "process tboom"]
    assert sorted(outcomes) == [(1, "retry", "ERROR"), (2, "failed", "ERROR")]


def test_no_tracing_without_a_provider(jobq_settings):
    """A library in an application that configured no tracer provider stays off: nothing stored."""
    tracing.disable()
    tracing._done = False
    try:
        assert tracing.setup() is None and tracing.TRACER is None
        m = QueueManager(jobq_settings, [QueueSpec(name="plain", handler=print)])
        m.add_job("plain", "p1", {})
        raw = m.redis.hget(m.keys("plain").job("p1"), "opts")
        assert raw is None
        m.shutdown()
    finally:
        tracing.disable()


WORKER = """
import json, signal, sys
from jobq import QueueSpec, Settings, tracing
from jobq.worker import Worker

def handler(job):
    return {"ok": True}

tracing.setup(configure_sdk=True)
worker = Worker([QueueSpec(name="otlp", handler=handler)], Settings(**json.loads(sys.argv[1])))
try:
    worker.run_forever()
finally:
    tracing.shutdown()
"""


def test_worker_process_exports_otlp_configured_by_env(jobq_settings, server, spans):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    port = server.server_address[1]
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_SERVICE_NAME": "worker-x",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(attrs.asdict(jobq_settings))], env=env)
    m = QueueManager(jobq_settings, [QueueSpec(name="otlp", handler=print)])
    try:
        with tracing.TRACER.start_as_current_span("client request") as request:
            m.add_job("otlp", "o1", {})
        wait_until(lambda: m.get_job_status("otlp", "o1") == "completed", 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        m.shutdown()
    exported = []
    for body in _Ok.bodies:
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
            exported += [(service, s) for ss in rs.scope_spans for s in ss.spans]
    assert exported, "the worker exported no span"
    service, span = next((svc, s) for svc, s in exported if s.name == "process otlp")
    assert service == "worker-x"
    assert int.from_bytes(span.trace_id, "big") == request.get_span_context().trace_id
    send = next(s for s in spans.get_finished_spans() if s.name == "send otlp")
    assert int.from_bytes(span.parent_span_id, "big") == send.context.span_id


def test_jobq_processes_trace_only_once_an_exporter_is_named(monkeypatch):
    """The extra alone turns nothing on: an OTLP exporter with no collector would retry at exit."""
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    tracing.disable()
    tracing._done = False
    try:
        assert tracing.setup(configure_sdk=True) is None
    finally:
        tracing.disable()
