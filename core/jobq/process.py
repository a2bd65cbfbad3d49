"""The child side of ``execution="process"``: a killable process per running CPU-bound job.

The parent's event loop keeps heartbeating while the child computes; on timeout or shutdown
the parent kills the child. Outcomes come back as plain tuples, so custom exception classes
never need to survive pickling.
"""

from __future__ import annotations

import json
import signal
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
            _scripts(settings).progress(keys=[keys.job(state["id"]), keys.events],
                                        args=[state["id"], state["token"], json.dumps(value),
                                              settings.events_maxlen])
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
