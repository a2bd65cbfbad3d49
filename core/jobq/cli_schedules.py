"""``jobq schedules``: list (with the next runs), add, remove, trigger, pause, resume."""

from __future__ import annotations

import json
from typing import Any

import click

from . import cli_support
from .schedules import CATCH_UP, Schedule, tick_at


@click.group()
def schedules() -> None:
    """Periodic jobs: what is scheduled, when it runs next; add and control schedules."""


def _when(info: dict[str, Any]) -> str:
    if info["cron"] is not None:
        return f"cron {info['cron']!r} {info['timezone']}"
    return f"every {info['every']:g}s"


@schedules.command("list")
@click.argument("queue", required=False)
@click.option("--runs", default=3, show_default=True, help="Next runs to show per schedule.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_(obj: Any, queue: str | None, runs: int, as_json: bool) -> None:
    """Schedules of QUEUE (default: every queue) and their next runs."""
    if queue is not None:
        cli_support.require_queue(obj.manager, obj.host, queue)
    rows = [i.to_dict() for i in obj.manager.list_schedules(queue, runs=runs)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no schedules")
    for r in rows:
        state = "PAUSED" if r["paused"] else f"catch-up {r['catch_up']}"
        click.echo(f"{r['queue']}/{r['name']}  {_when(r)}  {state}")
        tz = r["timezone"]
        if r["last_tick"] is not None:
            click.echo(f"  last  {tick_at(int(r['last_tick'] * 1000), tz)}")
        for t in r["next_runs"]:
            click.echo(f"  next  {tick_at(int(t * 1000), tz)}")


@schedules.command()
@click.argument("queue")
@click.argument("name")
@click.option("--cron", default=None, help="A cron expression, e.g. '*/5 * * * *'.")
@click.option("--every", type=float, default=None, help="Seconds between runs (at least 1).")
@click.option("--data", default="{}", show_default=True, help="The job data, JSON.")
@click.option("--timezone", default="UTC", show_default=True, help="The IANA zone the cron is read in.")
@click.option("--catch-up", type=click.Choice(CATCH_UP), default="latest", show_default=True,
              help="Ticks missed while no worker ran: run the newest once, all of them, or none.")
@click.option("--priority", type=int, default=None)
@click.option("--retries", type=int, default=None)
@click.option("--timeout", type=float, default=None, help="Seconds an attempt may run.")
@click.pass_obj
def add(obj: Any, queue: str, name: str, cron: str | None, every: float | None, data: str, timezone: str,
        catch_up: str, priority: int | None, retries: int | None, timeout: float | None) -> None:
    """Add (or replace) schedule NAME on QUEUE."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise click.ClickException(f"--data is not JSON: {exc}") from None
    options = {k: v for k, v in (("priority", priority), ("retries", retries), ("timeout", timeout)) if v is not None}
    s = Schedule(name=name, cron=cron, every=every, data=payload, timezone=timezone, catch_up=catch_up,  # type: ignore[arg-type]
                 options=options)
    changed = obj.manager.add_schedule(queue, s)
    click.echo(f"{'added' if changed else 'unchanged'} {queue}/{name}")


@schedules.command()
@click.argument("queue")
@click.argument("name")
@click.pass_obj
def remove(obj: Any, queue: str, name: str) -> None:
    """Remove schedule NAME (a plugin's schedule returns when its workers restart)."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    if not obj.manager.remove_schedule(queue, name):
        raise click.ClickException(f"no schedule {name!r} on queue {queue!r}")
    click.echo(f"removed {queue}/{name}")


@schedules.command()
@click.argument("queue")
@click.argument("name")
@click.pass_obj
def trigger(obj: Any, queue: str, name: str) -> None:
    """Enqueue one run of NAME now, outside its ticks; prints the job id."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    click.echo(obj.manager.trigger_schedule(queue, name).id)


@schedules.command()
@click.argument("queue")
@click.argument("name")
@click.pass_obj
def pause(obj: Any, queue: str, name: str) -> None:
    """Stop NAME's ticks; those due while paused are skipped."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    obj.manager.pause_schedule(queue, name)
    click.echo(f"paused {queue}/{name}")


@schedules.command()
@click.argument("queue")
@click.argument("name")
@click.pass_obj
def resume(obj: Any, queue: str, name: str) -> None:
    """Tick NAME again, from now."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    obj.manager.resume_schedule(queue, name)
    click.echo(f"resumed {queue}/{name}")
