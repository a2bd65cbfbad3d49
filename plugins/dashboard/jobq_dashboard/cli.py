"""``jobq dashboard``: serve the dashboard; ``jobq dashboard hash-password``: make a user's hash."""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import signal
import socket
import sys
from collections.abc import Iterator

import click

from .auth import USERS_ENV, UsersError, hash_password, users_from_env


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback one."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8650, show_default=True, type=click.IntRange(0, 65535))
@click.option("--root-path", default="", help="URL prefix when served behind a proxy under a path (/jobq).")
@click.option("--insecure-no-auth", is_flag=True, help="No sign-in, everyone is admin; loopback addresses only.")
@click.option("--session-hours", default=8.0, show_default=True, type=click.FloatRange(0.05, 24 * 30))
@click.option("--https-only", is_flag=True, help="Mark the session cookie Secure (behind TLS).")
@click.pass_context
def dashboard(ctx: click.Context, host: str, port: int, root_path: str, insecure_no_auth: bool,
              session_hours: float, https_only: bool) -> None:
    """Serve the web dashboard (users from JOBQ_DASHBOARD_USERS)."""
    if ctx.invoked_subcommand is not None:
        return
    if insecure_no_auth and not is_loopback(host):
        raise click.UsageError(f"--insecure-no-auth is refused on {host}: bind to 127.0.0.1 or ::1")
    try:
        users = users_from_env()
    except UsersError as exc:
        raise click.ClickException(str(exc)) from None
    if not users and not insecure_no_auth:
        raise click.ClickException(
            f"no dashboard users: set {USERS_ENV}=name:admin:<hash> (hash from `jobq dashboard hash-password`), "
            "or pass --insecure-no-auth on a loopback address")
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise click.BadParameter("a path like /jobq (leading slash, no trailing one)", param_hint="--root-path")
    import uvicorn

    from .app import create_app

    host_obj = getattr(ctx.obj, "host", None)
    app = create_app(users=users, insecure_no_auth=insecure_no_auth, session_hours=session_hours,
                     https_only=https_only, host=host_obj)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}{root_path}/"
    click.echo(f"jobq dashboard on {where}" + (" (NO AUTHENTICATION)" if insecure_no_auth else ""), err=True)
    config = uvicorn.Config(app, host=host, port=port, root_path=root_path, log_level="warning",
                            proxy_headers=False, server_header=False)
    _server_class()(config).run()


def _server_class() -> type:
    """uvicorn's server class, subclassed on first use (uvicorn is imported only to serve)."""
    import uvicorn

    class Server(uvicorn.Server):
        """Exits 0 after a SIGTERM/SIGINT shutdown (uvicorn would re-raise the signal and die of it)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    return Server


@dashboard.command("hash-password")
def hash_password_cmd() -> None:
    """Read a password on stdin (prompted on a terminal) and print its scrypt hash."""
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise click.ClickException("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        click.echo(hash_password(password))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
