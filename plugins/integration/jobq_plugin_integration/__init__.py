"""jobq plugin: the ``integrations`` queue, syncing bug reports to issue trackers and chat.

Platforms are found on the ``jobq.integrations`` entry-point group; see :mod:`.platform`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobq import QueueSpec, hookimpl

from .limits import job_limit_key
from .payload import IntegrationJob
from .pipeline import sync_issue
from .platform import ExternalIssue, Platform, Report, Sync

if TYPE_CHECKING:
    import click

__version__ = "0.1.0"
__all__ = ["ExternalIssue", "IntegrationJob", "Platform", "Report", "Sync", "jobq_cli_commands", "jobq_queues"]


REASON_CODES = ("ERR_AUTH", "ERR_NETWORK", "ERR_NOT_FOUND", "ERR_PLATFORM_BROKEN", "ERR_PLATFORM_PROTOCOL",
                "ERR_PLATFORM_REJECTED", "ERR_PLATFORM_TIMEOUT", "ERR_PLATFORM_UNAVAILABLE", "ERR_PROJECT_MISMATCH",
                "ERR_REPORT_NOT_FOUND", "ERR_REPORT_STORE", "ERR_UNKNOWN_PLATFORM")


@hookimpl
def jobq_queues() -> list[QueueSpec]:
    return [QueueSpec(name="integrations", handler=sync_issue, payload=IntegrationJob, concurrency=10,
                      retries=3, timeout=120, execution="async", secret_fields=("credentials",),
                      limit_key=job_limit_key, max_deferrals=200,
                      description="Create or update a bug report's issue on Jira, GitHub, Linear, Slack...",
                      reason_codes=REASON_CODES)]


@hookimpl
def jobq_cli_commands(cli: click.Group) -> None:
    from .cli import integrations

    cli.add_command(integrations)
