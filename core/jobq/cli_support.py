"""Helpers of the ``jobq`` CLI that catch a user's mistakes before they reach Redis.

Kept out of ``cli.py`` so the commands stay one screen each: which queues exist (and the closest
name to a typo), reading a payload from an argument, a file or stdin, and the ways out of a
broken plugin.
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .plugins import PluginHost
    from .queue import QueueManager

MAX_PAYLOAD_READ = 256 * 1024 * 1024  # the engine's default JOBQ_MAX_PAYLOAD_BYTES


def known_queues(manager: QueueManager, host: PluginHost) -> set[str]:
    """Queues an installed plugin declares plus queues a worker has announced on this Redis."""
    return set(host.specs) | set(manager.list_queues())


def unknown_queue_message(queue: str, known: set[str]) -> str:
    """``unknown queue 'screenshot'; did you mean 'screenshots'? known: ...``"""
    message = f"unknown queue {queue!r}"
    close = difflib.get_close_matches(queue, sorted(known), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message + f" (known: {', '.join(sorted(known)) or 'none'})"


def require_queue(manager: QueueManager, host: PluginHost, queue: str) -> None:
    """Refuse a queue no installed plugin declares and no worker has announced."""
    known = known_queues(manager, host)
    if queue not in known:
        raise click.ClickException(unknown_queue_message(queue, known))


def read_payload(data: str, *, limit: int = MAX_PAYLOAD_READ, stdin: IO[bytes] | None = None) -> Any:
    """The job data of ``jobq enqueue``: JSON text, ``@path`` (a file) or ``-`` (stdin).

    A real screenshot is larger than a command-line argument may be, hence the file and stdin forms;
    reading stops past ``limit`` bytes so a wrong file cannot fill the memory.
    """
    if data == "-":
        source = "stdin"
        raw = (stdin or sys.stdin.buffer).read(limit + 1)
    elif data.startswith("@"):
        path = Path(data[1:])
        source = str(path)
        try:
            with path.open("rb") as fh:
                raw = fh.read(limit + 1)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror or exc}", param_hint="DATA") from None
    else:
        source, raw = "the argument", data.encode()
    if len(raw) > limit:
        raise click.BadParameter(f"{source} holds more than {limit} bytes", param_hint="DATA")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not JSON: {exc}", param_hint="DATA") from None


def broken_plugin_hint(host: PluginHost) -> str:
    """The ways to start without the broken plugins: disable each, or all at once."""
    broken = sorted(host.failures)
    if not broken:
        return ""
    flags = " ".join(f"WORKER_{env_key(name)}_ENABLED=false" for name in broken)
    return f"; to start without it: {flags} or JOBQ_DISABLE_PLUGINS={','.join(broken)}"


def env_key(plugin: str) -> str:
    """``my-plugin`` -> ``MY_PLUGIN``: the part of ``WORKER_<EP>_ENABLED`` naming a plugin."""
    return plugin.upper().replace("-", "_").replace(".", "_")
