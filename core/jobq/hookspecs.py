"""Every hook a jobq plugin can implement.

Plugins register a module or object on the ``jobq.plugins`` entry-point group and mark its
functions with :data:`jobq.hookimpl`. Arguments are passed by keyword: a hook implementation
may accept any subset of them. Hooks gain arguments over time; none is renamed or removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .spec import QueueSpec

PROJECT = "jobq"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def jobq_queues() -> list[QueueSpec]:
    """Declare the queues this plugin serves.

    :return: a list of :class:`jobq.QueueSpec`; each queue name may be claimed by one plugin only.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_cli_commands(cli: click.Group) -> None:
    """Add commands to the ``jobq`` CLI.

    :param cli: the top-level click group; call ``cli.add_command(...)``.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_worker_started(worker_id: str, queues: list[str], specs: list[QueueSpec]) -> None:
    """A worker process started serving ``queues``; no job has started yet.

    :param worker_id: the worker's id, as registered in Redis.
    :param queues: the queue names it serves.
    :param specs: the :class:`jobq.QueueSpec` of each of those queues (``versionadded:: 0.2``).

    .. versionadded:: 0.1
    """


@hookspec
def jobq_worker_stopping(worker_id: str, queues: list[str]) -> None:
    """A worker process stopped fetching and is draining its active jobs.

    :param worker_id: the worker's id.
    :param queues: the queue names it served.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_worker_stopped(worker_id: str, queues: list[str]) -> None:
    """A worker process finished draining: no job of this process runs any more. Close pooled
    clients here; it is called on the worker's event loop thread, before its loop closes.

    :param worker_id: the worker's id.
    :param queues: the queue names it served.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_job_started(queue: str, job_id: str, attempt: int, wait: float) -> None:
    """A worker claimed a job and is about to run its handler.

    :param queue: the queue name.
    :param job_id: the job id.
    :param attempt: which start this is (1 for the first).
    :param wait: seconds from enqueue to this start.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_job_completed(queue: str, job_id: str, attempt: int, result: Any, duration: float) -> None:
    """An attempt succeeded and the job is ``completed``.

    :param queue: the queue name.
    :param job_id: the job id.
    :param attempt: which start this was (1 for the first).
    :param result: the handler's return value.
    :param duration: seconds the handler ran.

    .. versionadded:: 0.1
    """


@hookspec
def jobq_job_failed(queue: str, job_id: str, attempt: int, code: str, message: str, will_retry: bool) -> None:
    """An attempt failed.

    :param queue: the queue name.
    :param job_id: the job id.
    :param attempt: which start this was.
    :param code: the reason code (``ERR_TIMEOUT``, ``ERR_STALLED``, the error's ``code`` or class name).
    :param message: the error message, with the job's secrets redacted.
    :param will_retry: ``True`` when a retry is scheduled, ``False`` when the job is now ``failed``.

    .. versionadded:: 0.1
    """
