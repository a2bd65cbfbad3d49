"""jobq plugin: adds the ``jobq api`` and ``jobq reports`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobq import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def jobq_cli_commands(cli: click.Group) -> None:
    from .cli import api_command
    from .reports_cli import reports_command

    cli.add_command(api_command)
    cli.add_command(reports_command)
