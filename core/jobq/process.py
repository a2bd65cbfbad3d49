"""The child side of ``execution="process"``: a killable process per running CPU-bound job.

The parent's event loop keeps heartbeating while the child computes; on timeout or shutdown
the parent kills the child. Outcomes come back as plain tuples, so custom exception classes
never need to survive pickling.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
import traceback
from typing import Any

from .context import JobContext
from .errors import Retry, is_retryable, reason_code
from .serialization import structure_payload

_clients: dict[Any, Any] = {}


def child_init() -> None:
    """Pool processes leave Ctrl-C and SIGTERM to the parent, which decides what to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _client(settings: Any) -> Any:
    from .queue import make_client

    if settings.redis_url not in _clients:
        _clients[settings.redis_url] = make_client(settings)
    return _clients[settings.redis_url]


def _scripts(settings: Any) -> Any:
    from .scripts import Scripts

    key = ("scripts", settings.redis_url)
    if key not in _clients:
        _clients[key] = Scripts(_client(settings))
    return _clients[key]


class _ProgressWriter:
    """Sends a process handler's progress writes from a thread of the child, in order.

    ``job.progress()`` never blocks the handler, as in the other execution modes: a CPU-bound
    handler reporting its steps would otherwise wait a Redis round trip per step. :meth:`flush`
    runs before the outcome goes back to the parent, so the last progress lands before the
    completion or failure is recorded.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def send(self, script: Any, keys: list[str], args: list[Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="jobq-progress", daemon=True)
            self._thread.start()
        self._queue.put((script, keys, args))

    def flush(self, timeout: float) -> None:
        """Wait for the writes sent so far, up to ``timeout`` (Redis unreachable): a write still
        pending then is refused by ``progress.lua`` once the attempt is over (its token is gone)."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            script, keys, args = item
            try:
                script(keys=keys, args=args)
            except Exception:  # progress is best effort; the job goes on
                pass


_progress_writer = _ProgressWriter()


def child_run(handler: Any, state: dict[str, Any]) -> tuple[str, Any]:
    settings = state["settings"]
    from .keys import QueueKeys

    keys = QueueKeys(settings.prefix, state["queue"])
    secrets = state["secrets"]
    payload = state["payload"]

    def load(value: Any) -> Any:
        if secrets and isinstance(value, dict):
            value = {**value, **secrets}
        return structure_payload(value, payload) if payload is not None else value

    def progress(value: Any) -> None:
        try:
            args = [state["id"], state["token"], json.dumps(value), settings.events_maxlen]
            _progress_writer.send(_scripts(settings).progress, [keys.job(state["id"]), keys.events], args)
        except Exception:  # progress is best effort; the job goes on
            pass

    opener = None
    if state["ref"]:
        from .storage import Storage

        storage = Storage.from_settings(settings)
        ref = state["ref"]
        opener = lambda: storage.open(ref)  # noqa: E731
    ctx = JobContext(id=state["id"], queue=state["queue"], name=state["name"], attempt=state["attempt"],
                     created_at=state["created_at"], token=state["token"], raw=state["raw"],
                     loader=load if (payload is not None or secrets) else None, opener=opener,
                     progress=progress, settings=settings, redis=lambda: _client(settings))
    ctx.dependency_results = state.get("dependency_results") or {}
    try:
        if payload is not None and not state["lazy"]:
            ctx.data  # noqa: B018  (validate before the handler runs)
        result = handler(ctx)
        json.dumps(result, allow_nan=False)
        return "ok", result
    except Retry as r:
        return "err", ("defer", "ERR_DEFERRED", str(r), "", r.delay, getattr(r, "key", None))
    except Exception as exc:
        kind = "error" if is_retryable(exc) else "fatal"
        if isinstance(exc, TypeError | ValueError) and "JSON" in str(exc):
            kind, code = "fatal", "ERR_RESULT_NOT_SERIALIZABLE"
        else:
            code = reason_code(exc)
        return "err", (kind, code, str(exc) or type(exc).__name__, "".join(traceback.format_exception(exc)))
    finally:
        _progress_writer.flush(settings.socket_timeout)
