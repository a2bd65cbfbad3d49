"""``jobq integrations``: which platforms this environment can sync to, and which are broken."""

from __future__ import annotations

import json

import click

from .registry import DISABLED_ENV, GROUP, default_registry


@click.command("integrations")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def integrations(as_json: bool) -> None:
    """List the integration platforms installed on the jobq.integrations entry-point group."""
    reg = default_registry()
    rows = [{"name": e.name, "title": getattr(e.platform, "title", "") or "", "distribution": e.distribution,
             "version": e.version, "status": "ok" if e.platform is not None else "broken",
             "error": e.error} for e in reg.entries()]
    if as_json:
        click.echo(json.dumps({"platforms": rows, "disabled": sorted(reg.disabled)}, indent=2))
        return
    if not rows:
        click.echo(f"no platform registered on {GROUP!r}")
    for r in rows:
        line = f"{r['name']:<12} {r['status']:<7} {r['distribution']} {r['version']}"
        click.echo(line + (f"  {r['title']}" if r["title"] else "") + (f"\n    {r['error']}" if r["error"] else ""))
    if reg.disabled:
        click.echo(f"disabled by {DISABLED_ENV}: {', '.join(sorted(reg.disabled))}")
