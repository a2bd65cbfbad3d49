"""OpenTelemetry traces across the queue (``pip install jobq[otel]``), configured only by the
standard ``OTEL_*`` environment variables.

A producer inside an active span stores the W3C trace context in the job (its options, key
``tp``); the worker runs the handler inside a ``process <queue>`` span whose parent is that
context, so the API request, the enqueue and the handler share one trace id, and the handler's
own HTTP calls (``jobq.outbound``) are child spans. Span names and attributes follow the
OpenTelemetry messaging conventions (``messaging.system=jobq``, ``messaging.destination.name``,
``messaging.message.id``, ``messaging.operation.type``) plus ``jobq.job.attempt`` and
``jobq.job.outcome``.

Off costs nothing: :data:`TRACER` stays ``None`` and the hot paths test only that. It is set by
:func:`setup` when the OpenTelemetry API is installed and ``OTEL_SDK_DISABLED`` is not ``true``:
in jobq's own processes (``jobq run``, ``jobq api``) it configures the SDK from ``OTEL_*`` when they
name an exporter or an endpoint, unless the application already did; elsewhere it uses whatever
tracer provider the application set.
"""

from __future__ import annotations

import contextvars
import logging
import os
from typing import Any

log = logging.getLogger(__name__)
TRACER: Any = None  # an opentelemetry Tracer while tracing is on
_done = False


def setup(*, configure_sdk: bool = False) -> Any:
    """Turn tracing on if it can be (once per process); returns the tracer or ``None``."""
    global TRACER, _done
    if _done:
        return TRACER
    _done = True
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    if configure_sdk and not _provider_set(trace):
        if not _exporter_named() or not _configure_sdk(trace):
            return None
    elif not _provider_set(trace):
        return None  # a library in an application that traces nothing: stay off
    from . import __version__

    TRACER = trace.get_tracer("jobq", __version__)
    return TRACER


def enable(provider: Any = None) -> Any:
    """Turn tracing on with ``provider`` (tests, or applications that keep their own provider)."""
    global TRACER, _done
    from opentelemetry import trace

    from . import __version__

    _done = True
    TRACER = (provider or trace.get_tracer_provider()).get_tracer("jobq", __version__)
    return TRACER


def disable() -> None:
    global TRACER, _done
    TRACER, _done = None, True


def _exporter_named() -> bool:
    """Whether the environment names somewhere to send spans: an installed extra alone does not turn
    tracing on (an OTLP exporter with no collector would retry and slow every shutdown)."""
    return any(os.environ.get(n, "").strip() for n in (
        "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def _provider_set(trace: Any) -> bool:
    return type(trace.get_tracer_provider()).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")


def _configure_sdk(trace: Any) -> bool:
    """A TracerProvider with a batch exporter chosen by ``OTEL_TRACES_EXPORTER`` (``otlp``, the
    default, or ``console``); resource attributes from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("tracing: opentelemetry-sdk is not installed (pip install 'jobq[otel]'); traces are off")
        return False
    kinds = [k.strip().lower() for k in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if k.strip()]
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       "jobq")}))
    for kind in kinds:
        if kind == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif kind == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                log.warning("tracing: the OTLP exporter is not installed (pip install 'jobq[otel]')")
                continue
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            log.warning("tracing: OTEL_TRACES_EXPORTER=%s is not supported by jobq (otlp, console)", kind)
    trace.set_tracer_provider(provider)
    return True


def shutdown() -> None:
    """Flush spans at process exit (``jobq run``, ``jobq api``)."""
    if TRACER is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


# -- producer side ------------------------------------------------------------------------------
def start_send(queue: str, ids: list[str]) -> tuple[Any, str]:
    """A PRODUCER span for an enqueue, and the traceparent to store in its jobs."""
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    attrs: dict[str, Any] = {"messaging.system": "jobq", "messaging.destination.name": queue,
                             "messaging.operation.type": "send", "messaging.operation.name": "send"}
    if len(ids) == 1:
        attrs["messaging.message.id"] = ids[0]
    else:
        attrs["messaging.batch.message_count"] = len(ids)
    span = TRACER.start_span(f"send {queue}", kind=SpanKind.PRODUCER, attributes=attrs)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return span, carrier.get("traceparent", "")


def end(span: Any, error: BaseException | None = None) -> None:
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


# -- worker side --------------------------------------------------------------------------------
def start_process(queue: str, job_id: str, attempt: int, traceparent: str | None) -> tuple[Any, contextvars.Context]:
    """A CONSUMER span for one attempt, child of the producer's context, and a context to run the
    handler in so that its own spans (HTTP calls) are children of it."""
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import SpanKind

    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    span = TRACER.start_span(f"process {queue}", context=parent, kind=SpanKind.CONSUMER, attributes={
        "messaging.system": "jobq", "messaging.destination.name": queue, "messaging.operation.type": "process",
        "messaging.operation.name": "process", "messaging.message.id": job_id, "jobq.job.attempt": attempt})
    ctx = contextvars.copy_context()
    ctx.run(context.attach, trace.set_span_in_context(span))
    return span, ctx


def end_process(span: Any, outcome: str, code: str | None = None) -> None:
    span.set_attribute("jobq.job.outcome", outcome)
    if code:
        span.set_attribute("error.type", code)
    if outcome in ("failed", "retry"):
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, code or outcome))
    span.end()


def current_traceparent() -> str:
    """The traceparent of the current span, for a request to continue (or ``''``)."""
    if TRACER is None:
        return ""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


# -- outbound HTTP ------------------------------------------------------------------------------
def start_client(method: str, url: str, host: str) -> Any:
    """A CLIENT span for a handler's HTTP request (the URL without its query, which may carry tokens)."""
    from opentelemetry.trace import SpanKind

    return TRACER.start_span(f"{method}", kind=SpanKind.CLIENT, attributes={
        "http.request.method": method, "url.full": url.split("?", 1)[0], "server.address": host})
