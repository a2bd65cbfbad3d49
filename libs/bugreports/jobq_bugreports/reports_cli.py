"""``jobq reports``: operator commands on stored bug reports."""

from __future__ import annotations

import json

import click


@click.group("reports")
def reports_command() -> None:
    """Bug reports in the report store (DATABASE_URL)."""


@reports_command.command("delete")
@click.argument("report_id")
@click.option("--json", "as_json", is_flag=True)
def delete_command(report_id: str, as_json: bool) -> None:
    """Erase REPORT_ID and everything it produced: its jobs in every queue (cancelled if running),
    stored screenshots, thumbnails, replay chunks and payloads, delivery records, the report."""
    from jobq import QueueManager
    from jobq.storage import Storage

    from .erasure import ErasureIncomplete, erase_report
    from .intake import fallback_specs
    from .store import ReportStore

    with ReportStore.from_env() as store, QueueManager(specs=fallback_specs(), strict=False) as manager:
        try:
            outcome = erase_report(store, manager, Storage.from_settings(manager.settings), report_id)
        except ErasureIncomplete as exc:
            raise click.ClickException(f"erasure incomplete, run it again: {exc}") from None
    if outcome is None:
        raise click.ClickException(f"no report {report_id!r}")
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
        return
    click.echo(f"erased report {report_id}: {outcome['jobs']} job(s), {outcome['objects']} stored object(s)")
    for issue in outcome["externalIssues"]:
        click.echo(f"still on {issue['platform']} (delete it there): {issue['externalUrl']}")
