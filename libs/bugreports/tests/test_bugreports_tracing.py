"""The intake API continues an incoming ``traceparent``: the report's jobs join the caller's trace."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from jobq import QueueManager
from jobq_bugreports.api import create_app
from jobq_bugreports.intake import fallback_specs
from jobq_bugreports.projects import ApiKeys
from jobq_bugreports.store import ReportStore

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.trace import SpanKind

CORPORA = next((p for p in (Path(__file__).resolve().parents[3].parent / "shared" / "corpora",
                            Path("/work/shared/corpora")) if p.is_dir()), Path("/work/shared/corpora"))
KEY = "trace-key-0123456789abcdef"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def spans(jobq_spans):
    return jobq_spans


def test_post_continues_the_callers_trace(served, jobq_settings, tmp_path, spans) -> None:
    png = (CORPORA / "images/valid/hopper.png").read_bytes()
    body = {"title": "t", "screenshot": "data:image/png;base64," + base64.b64encode(png).decode()}
    with ReportStore(f"sqlite:///{tmp_path / 'r.db'}") as store:
        app = create_app(settings=jobq_settings, store=store, api_keys=ApiKeys({"p1": KEY}), projects={},
                         specs=fallback_specs())
        with served(app) as client:
            resp = client.post("/api/v1/reports", json=body,
                               headers={"X-API-Key": KEY, "traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
            assert resp.status_code == 201, resp.text
            rid = resp.json()["id"]
            assert client.get(f"/api/v1/reports/{rid}", headers={"X-API-Key": KEY}).status_code in (200, 401, 403)
    finished = spans.get_finished_spans()
    server = next(s for s in finished if s.name == "POST /api/v1/reports")
    send = next(s for s in finished if s.name == "send screenshots")
    assert server.kind == SpanKind.SERVER and f"{server.context.trace_id:032x}" == TRACE_ID
    assert f"{server.parent.span_id:016x}" == PARENT
    assert send.parent.span_id == server.context.span_id and send.context.trace_id == server.context.trace_id
    assert server.attributes["http.response.status_code"] == 201
    get = [s for s in finished if s.name == "GET /api/v1/reports/{report_id}"]
    assert get and get[0].attributes["http.route"] == "/api/v1/reports/{report_id}"  # no id in the name
    with QueueManager(jobq_settings, strict=False) as m:
        job = m.get_job("screenshots", f"screenshot-{rid}")
        raw = m.redis.hget(m.keys("screenshots").job(job.id), "opts")
    assert TRACE_ID.encode() in raw  # the worker finds the context in the job
