"""The jobq web dashboard: ``jobq dashboard`` serves it, :func:`create_app` mounts it in another app.

Importing this package stays cheap (workers load every plugin): Starlette and Jinja2 load on first use.
"""

from __future__ import annotations

from typing import Any

from jobq import hookimpl

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)


@hookimpl
def jobq_cli_commands(cli: Any) -> None:
    from .cli import dashboard

    cli.add_command(dashboard)
