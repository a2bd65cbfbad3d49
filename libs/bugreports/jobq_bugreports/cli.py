"""``jobq api``: serve the intake API with uvicorn."""

from __future__ import annotations

import logging

import click


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port (0 picks a free one; the address is logged).")
def api_command(host: str, port: int) -> None:
    """Serve the bug-report intake API (POST/GET /api/v1/reports).

    Reads JOBQ_API_KEYS, JOBQ_API_READ_KEYS, JOBQ_PROJECTS_FILE, JOBQ_API_MAX_BODY, the connection
    limits (JOBQ_API_HEADER_TIMEOUT, JOBQ_API_BODY_TIMEOUT, JOBQ_API_IDLE_TIMEOUT,
    JOBQ_API_MAX_CONNECTIONS), DATABASE_URL and the jobq settings (REDIS_URL, JOBQ_PREFIX,
    STORAGE_URL...) from the environment.
    """
    from jobq import ConfigError, tracing

    try:
        from .api import create_app
        from .server import ServerLimits, quiet_logs, server_config
    except ImportError as exc:
        raise click.ClickException(
            f"the intake API needs its extra: pip install 'jobq-bugreports[api]' ({exc.name} is missing)") from None
    tracing.setup(configure_sdk=True)  # OTEL_* decide; off without jobq[otel]
    try:
        limits = ServerLimits.from_env()
        app = create_app()
    except (ConfigError, ValueError, ImportError) as exc:
        raise click.ClickException(str(exc)) from None
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if level not in ("critical", "error", "warning", "info", "debug"):
        level = "info"
    quiet_logs()
    try:
        _serve(server_config(app, host=host, port=port, limits=limits, log_level=level))
    finally:
        tracing.shutdown()


def _serve(config: object) -> None:
    """Run uvicorn, exiting 0 after a graceful SIGTERM/SIGINT shutdown.

    uvicorn re-raises the signal once it has shut down, so the process would die of it (exit 143)
    although it stopped cleanly on request; here the signal only asks for the shutdown.
    """
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[override]
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
            yield

    Server(config).run()  # type: ignore[arg-type]
