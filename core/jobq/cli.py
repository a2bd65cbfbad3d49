"""The ``jobq`` command line. Read commands take ``--json``; failures exit non-zero."""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from typing import Any

import attrs
import click
import redis

from . import cli_support
from .cli_schedules import schedules
from .config import METRICS_PORT, Settings
from .errors import JobqError
from .plugins import PluginHost
from .queue import QueueManager
from .redaction import redact_logs
from .spec import QUEUE_NAME, QueueSpec


def _env_flag(name: str, default: bool = True) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _env_key(plugin: str) -> str:
    return plugin.upper().replace("-", "_").replace(".", "_")


class Ctx:
    def __init__(self, host: PluginHost | None = None) -> None:
        self._host = host
        self._manager: QueueManager | None = None

    @property
    def host(self) -> PluginHost:
        if self._host is None:
            self._host = PluginHost().load()
        return self._host

    @property
    def settings(self) -> Settings:
        return Settings.from_env()

    @property
    def manager(self) -> QueueManager:
        if self._manager is None:
            self._manager = QueueManager(self.settings, self.host.specs.values())
        return self._manager


def _out(data: Any, as_json: bool, human: Any) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        human(data)


class JobqGroup(click.Group):
    """Turns jobq and Redis errors into one clear line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobqError as exc:
            raise click.ClickException(str(exc)) from None
        except redis.RedisError as exc:
            raise click.ClickException(f"Redis: {type(exc).__name__}: {exc}") from None


@click.group(cls=JobqGroup)
@click.version_option(package_name="jobq", message="%(prog)s %(version)s")
@click.option("--log-level", default=lambda: os.environ.get("JOBQ_LOG_LEVEL", "INFO"), show_default="INFO")
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """jobq: a Redis job queue with installable job-type plugins."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    redact_logs()  # every logger a DEBUG level turns on (httpcore, hpack, urllib3, botocore...) goes through it
    if ctx.obj is None:
        ctx.obj = Ctx()


def _env_rate(name: str) -> tuple[int, float] | None:
    """``max/seconds`` (``100/60``: at most 100 starts in any 60 s) from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    from .limits import parse_rate

    value = parse_rate(raw)
    if value is None:
        raise click.ClickException(f"{name}={raw!r} must be max/seconds, e.g. 100/60 (at most 100 starts a minute)")
    return value


def select_specs(host: PluginHost, queues: tuple[str, ...], concurrency: tuple[str, ...]) -> list[QueueSpec]:
    """Which queues ``jobq run`` serves: enabled plugins, ``WORKER_TYPES``/``--queue``, concurrency overrides."""
    wanted = set(queues) or {q.strip() for q in os.environ.get("WORKER_TYPES", "").split(",") if q.strip()}
    unknown = wanted - set(host.specs)
    if unknown:
        raise click.ClickException("no installed plugin declares it: " + "; ".join(
            cli_support.unknown_queue_message(q, set(host.specs)) for q in sorted(unknown)))
    overrides: dict[str, int] = {}
    for item in concurrency:
        name, _, n = item.partition("=")
        if not n.isdigit() or int(n) < 1:
            raise click.BadParameter(f"expected QUEUE=N, got {item!r}", param_hint="--concurrency")
        overrides[name] = int(n)
    enabled_plugins = []
    specs = []
    for plugin, info in sorted(host.plugins.items()):
        key = _env_key(plugin)
        if not _env_flag(f"WORKER_{key}_ENABLED"):
            continue
        if wanted and not (set(info.queues) & wanted) and not (info.error and not info.queues):
            continue
        enabled_plugins.append(plugin)
        env_conc = os.environ.get(f"WORKER_{key}_CONCURRENCY")
        if env_conc and (not env_conc.strip().isdigit() or int(env_conc) < 1):
            raise click.ClickException(f"WORKER_{key}_CONCURRENCY={env_conc!r} must be a whole number of 1 or more")
        rate = _env_rate(f"WORKER_{key}_RATE_LIMIT")
        for q in info.queues:
            if wanted and q not in wanted:
                continue
            spec = host.specs[q]
            n = overrides.get(q) or (int(env_conc) if env_conc else None)
            if n:
                spec = attrs.evolve(spec, concurrency=n)
            specs.append(attrs.evolve(spec, rate_limit=rate) if rate else spec)
    if wanted:
        enabled_plugins = [p for p in enabled_plugins if set(host.plugins[p].queues) & wanted]
    host.check(enabled_plugins)
    return specs


@cli.command()
@click.option("--queue", "-q", "queues", multiple=True, help="Serve only these queues (else WORKER_TYPES).")
@click.option("--concurrency", "-c", multiple=True, metavar="QUEUE=N", help="Override a queue's concurrency.")
@click.option("--metrics-port", type=int, default=lambda: os.environ.get(METRICS_PORT) or None,
              help="Serve Prometheus /metrics on this port (JOBQ_METRICS_PORT).")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True)
@click.option("--processes", "-p", default=lambda: os.environ.get("JOBQ_PROCESSES") or "1", show_default="1",
              metavar="N|auto", help="Worker processes under one supervisor (auto: one per CPU; JOBQ_PROCESSES).")
@click.pass_obj
def run(obj: Ctx, queues: tuple[str, ...], concurrency: tuple[str, ...], metrics_port: int | None,
        metrics_addr: str, processes: str) -> None:
    """Run workers for every installed, enabled plugin's queues until SIGTERM/SIGINT.

    With --processes N above 1, a supervisor runs N worker processes, restarts one that dies and
    exits 0 once all drained after SIGTERM (3 when one did not drain cleanly).
    """
    from . import prefork
    from .worker import Worker

    host = obj.host
    try:
        n = prefork.parse_processes(processes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--processes") from None
    try:
        specs = select_specs(host, queues, concurrency)
    except JobqError as exc:
        raise click.ClickException(f"refusing to start: {exc}{cli_support.broken_plugin_hint(host)}") from None
    if not specs:
        raise click.ClickException("no queues to serve: no enabled plugin declares one")
    child = prefork.child_info()
    if n > 1 and child is None:
        metrics = (int(metrics_port), metrics_addr) if metrics_port else None
        sup = prefork.Supervisor(n, obj.settings, metrics=metrics, queues=[s.name for s in specs])
        click.echo(f"jobq supervisor {sup.id}: {n} processes, " + ", ".join(f"{s.name} x{s.concurrency}"
                                                                          for s in specs), err=True)
        if metrics:
            click.echo(f"metrics on http://{metrics_addr}:{metrics_port}/metrics (all processes)", err=True)
        sys.exit(sup.run())
    from . import tracing

    tracing.setup(configure_sdk=True)  # OTEL_* decide; off without jobq[otel]
    worker = Worker(specs, obj.settings, hooks=host,
                    worker_id=os.environ.get("JOBQ_WORKER_ID") if child else None)
    if child is not None:
        worker.presence_extra["supervisor"] = child
        metrics_port = None  # the supervisor serves every child's metrics
    if metrics_port:
        from . import metrics

        metrics.serve(int(metrics_port), obj.settings, worker, addr=metrics_addr)
        click.echo(f"metrics on http://{metrics_addr}:{metrics_port}/metrics", err=True)
    click.echo(f"jobq worker {worker.id}: " + ", ".join(f"{s.name} x{s.concurrency}" for s in specs), err=True)
    # What start-up loaded (every plugin's modules) lives as long as the process: move it out of the
    # collector's sight, so full collections while serving scan only what jobs allocate
    # (~8 µs less CPU per no-op job with every shipped plugin loaded).
    gc.collect()
    gc.freeze()
    try:
        worker.run_forever()
    finally:
        tracing.shutdown()


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--traceback", "show_tb", is_flag=True, help="Show the traceback of each broken plugin.")
@click.pass_obj
def plugins(obj: Ctx, as_json: bool, show_tb: bool) -> None:
    """List installed plugins: name, distribution, version, queues, failures."""
    host = obj.host
    rows = [attrs.asdict(p) for p in host.plugins.values()]
    for r in rows:
        tb = r.pop("traceback")
        if show_tb:
            r["traceback"] = tb

    def human(rows: list[dict[str, Any]]) -> None:
        if not rows:
            click.echo("no plugins installed")
        for r in rows:
            queues = ", ".join(r["queues"]) or "-"
            line = f"{r['name']:<16} {r['distribution'] or '-'} {r['version'] or ''}  queues: {queues}"
            click.echo(line + (f"\n  BROKEN: {r['error']}" if r["error"] else ""))
            if r.get("traceback"):
                click.echo("  " + r["traceback"].rstrip().replace("\n", "\n  "))

    _out(rows, as_json, human)
    if host.failures:
        sys.exit(1)


@cli.command()
@click.argument("queue")
@click.argument("data")
@click.option("--job-id", default=None)
@click.option("--delay", type=float, default=None, help="Seconds before the job may start.")
@click.option("--priority", type=int, default=None, help="Higher runs sooner (-1000..1000).")
@click.option("--retries", type=int, default=None)
@click.option("--backoff", type=float, default=None, help="Base seconds between retries.")
@click.option("--timeout", type=float, default=None, help="Seconds one attempt may run.")
@click.option("--name", default=None, help="A label for the job (shown by `jobq job`).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def enqueue(obj: Ctx, queue: str, data: str, job_id: str | None, delay: float | None, priority: int | None,
            retries: int | None, backoff: float | None, timeout: float | None, name: str | None,
            as_json: bool) -> None:
    """Add a job to QUEUE; prints the job id. DATA is JSON, @file.json, or - (stdin)."""
    payload = cli_support.read_payload(data, limit=obj.settings.max_payload_bytes)
    cli_support.require_queue(obj.manager, obj.host, queue)
    opts = {k: v for k, v in (("delay", delay), ("priority", priority), ("retries", retries), ("backoff", backoff),
                              ("timeout", timeout), ("name", name)) if v is not None}
    existing = obj.manager.get_job_status(queue, job_id) if job_id else None
    job = obj.manager.add_job(queue, job_id, payload, **opts)
    created = existing is None
    out = {"id": job.id, "queue": queue, "created": created, "state": job.state}
    if as_json:
        click.echo(json.dumps(out))
    elif created:
        click.echo(job.id)
    else:
        click.echo(f"{job.id} already exists in {queue} (state: {job.state}); not enqueued again")


@cli.command()
@click.argument("queue")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--wait", is_flag=True, help="Wait until the job ends; exit 1 unless it completed.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds --wait waits.")
@click.pass_obj
def job(obj: Ctx, queue: str, job_id: str, as_json: bool, wait: bool, timeout: float) -> None:
    """Show a job: state, progress, attempts, result, failure (secrets redacted)."""
    from .results import JobNotCompleted

    cli_support.require_queue(obj.manager, obj.host, queue)
    unsuccessful = False
    if wait:
        try:
            obj.manager.wait_for(queue, job_id, timeout)
        except JobNotCompleted:
            unsuccessful = True
    data = obj.manager.job_dict(queue, job_id)

    def human(d: dict[str, Any]) -> None:
        for key in ("id", "queue", "state", "progress", "attempts", "failed_attempts", "stalls", "result"):
            click.echo(f"{key:<16} {json.dumps(d[key])}")
        if d["failure"]:
            click.echo(f"{'failure':<16} {d['failure']['code']}: {d['failure']['message']}")
            if d["failure"]["stack"]:
                click.echo(d["failure"]["stack"].rstrip())

    _out(data, as_json, human)
    if unsuccessful:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--groups", "top", type=click.IntRange(1, 1000), default=None, is_flag=False, flag_value=10,
              help="Also list each queue's groups with the most waiting jobs (10, or --groups=N).")
@click.option("--history", is_flag=True, help="Per-minute completed/failed/retried/stalled and durations instead.")
@click.option("--minutes", default=60, show_default=True, type=click.IntRange(1, 1440), help="With --history.")
@click.option("--queue", "-q", "queues", multiple=True, help="With --history: only these queues.")
@click.pass_obj
def stats(obj: Ctx, as_json: bool, top: int | None, history: bool, minutes: int, queues: tuple[str, ...]) -> None:
    """Jobs per queue and state, rate-limited queues, live workers, plugin failures."""
    m = obj.manager
    for q in queues:  # a malformed name is left to --history's own check
        if QUEUE_NAME.fullmatch(q):
            cli_support.require_queue(m, obj.host, q)
    if history:
        _history(m, as_json, minutes, list(queues) or m.list_queues())
        return
    counts = m.get_queue_stats()
    data: dict[str, Any] = {"queues": counts, "workers": m.list_workers(), "plugin_failures": obj.host.failures}
    data["flow_control"] = {q: m.get_flow_control(q) for q in sorted(counts)}
    if top:
        data["groups"] = {q: m.get_group_stats(q, top) for q in sorted(counts)}

    def human(d: dict[str, Any]) -> None:
        click.echo(f"{'queue':<20}{'waiting':>9}{'active':>8}{'delayed':>9}{'completed':>11}{'failed':>8}{'paused':>8}")
        for q, s in sorted(d["queues"].items()):
            click.echo(f"{q:<20}{s['waiting']:>9}{s['active']:>8}{s['delayed']:>9}{s['completed']:>11}"
                       f"{s['failed']:>8}{s['paused']:>8}")
        for q, f in d["flow_control"].items():
            if f["rate_limit"] or f["held_keys"] or f["group_concurrency"] or f["group_rate_limit"]:
                click.echo(_flow_line(q, f))
        for q, rows in d.get("groups", {}).items():
            if rows:
                click.echo(f"groups of {q} (most waiting first):")
            for r in rows:
                flags = " paused" * r["paused"] + " rate-limited" * r["rate_limited"]
                click.echo(f"  {r['group']:<30}{r['waiting']:>9} waiting{r['active']:>6} active{flags}")
        click.echo(f"workers alive: {sum(1 for w in d['workers'] if w['alive'])}")
        for name, err in d["plugin_failures"].items():
            click.echo(f"plugin {name} BROKEN: {err}")

    _out(data, as_json, human)


def _flow_line(queue: str, f: dict[str, Any]) -> str:
    parts = []
    if f["rate_limit"]:
        mx, per = f["rate_limit"]
        parts.append(f"rate {mx}/{per:g}s ({f['starts_in_window']} started in the window)")
    if f["group_concurrency"]:
        parts.append(f"{f['group_concurrency']} active per group")
    if f["group_rate_limit"]:
        mx, per = f["group_rate_limit"]
        parts.append(f"{mx}/{per:g}s per group ({f['groups_rate_limited']} groups waiting for their window)")
    if f["held_keys"]:
        parts.append(f"{f['held_keys']} limit key(s) held")
    return f"{queue}: {'RATE-LIMITED ' if f['limited'] else ''}{', '.join(parts)}"


def _history(m: QueueManager, as_json: bool, minutes: int, queues: list[str]) -> None:
    import time

    from .history import read_history, summarize
    from .spec import QUEUE_NAME

    bad = [q for q in queues if not QUEUE_NAME.fullmatch(q)]
    if bad:
        raise click.BadParameter(f"{bad[0]!r} is not a queue name ({QUEUE_NAME.pattern})", param_hint="--queue")
    rows = read_history(m, queues, minutes)
    data = {q: {"summary": summarize(r), "minutes": [x.to_dict() for x in r]} for q, r in rows.items()}

    def ms(v: float | None) -> str:
        return "-" if v is None else ">300s" if v == float("inf") else f"{v:g}ms"

    def human(d: dict[str, Any]) -> None:
        for q, h in sorted(d.items()):
            s = h["summary"]
            click.echo(f"{q}: last {minutes} min: completed {s['completed']}, failed {s['failed']}, retried "
                       f"{s['retried']}, stalled {s['stalled']}; p50 {ms(s['p50_ms'])} p95 {ms(s['p95_ms'])} "
                       f"p99 {ms(s['p99_ms'])}")
            for r in h["minutes"]:
                if r["completed"] or r["failed"] or r["retried"] or r["stalled"]:
                    t = time.strftime("%H:%M", time.gmtime(r["timestamp"]))
                    click.echo(f"  {t} UTC  completed {r['completed']:>6}  failed {r['failed']:>5}  "
                               f"retried {r['retried']:>5}  stalled {r['stalled']:>4}")

    _out(data, as_json, human)


@cli.command()
@click.argument("queue")
@click.option("--group", "-g", help="Pause only this group of QUEUE.")
@click.pass_obj
def pause(obj: Ctx, queue: str, group: str | None) -> None:
    """Stop workers from starting jobs of QUEUE, or of one group of it (active ones finish)."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    if group is not None:
        obj.manager.pause_group(queue, group)
        click.echo(f"paused group {group} of {queue}")
        return
    obj.manager.pause_queue(queue)
    click.echo(f"paused {queue}")


@cli.command()
@click.argument("queue")
@click.option("--group", "-g", help="Resume only this group of QUEUE.")
@click.pass_obj
def resume(obj: Ctx, queue: str, group: str | None) -> None:
    """Let workers start jobs of QUEUE, or of one group of it, again."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    if group is not None:
        obj.manager.resume_group(queue, group)
        click.echo(f"resumed group {group} of {queue}")
        return
    obj.manager.resume_queue(queue)
    click.echo(f"resumed {queue}")


@cli.command()
@click.argument("queue")
@click.argument("job_id", required=False)
@click.option("--group", default=None, help="Cancel every unfinished job of this group instead of one job.")
@click.option("--reason", default=None, help="kept with the job as its failure message")
@click.pass_obj
def cancel(obj: Ctx, queue: str, job_id: str | None, group: str | None, reason: str | None) -> None:
    """Cancel a job (or --group G: all of a group's): it never starts, or its running handler is
    stopped; never retried."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    if (job_id is None) == (group is None):
        raise click.UsageError("name a JOB_ID or --group, not both")
    if group is not None:
        n = obj.manager.cancel_group(queue, group, reason)
        click.echo(f"cancelled {n} job(s) of group {group} in {queue}")
        return
    was = obj.manager.cancel_job(queue, job_id, reason)
    if was in ("completed", "failed", "cancelled"):
        click.echo(f"{queue}/{job_id} had already ended ({was}); nothing to cancel")
    else:
        click.echo(f"cancelled {queue}/{job_id} (was {was})")


@cli.group()
def failed() -> None:
    """The dead-letter view: jobs that failed for good."""


@failed.command("list")
@click.argument("queue")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def failed_list(obj: Ctx, queue: str, limit: int, as_json: bool) -> None:
    """Failed jobs of QUEUE, newest first."""
    from .jobs import job_to_dict

    cli_support.require_queue(obj.manager, obj.host, queue)

    rows = [job_to_dict(j) for j in obj.manager.list_jobs(queue, "failed", 0, limit)]

    def human(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            f = r["failure"] or {}
            click.echo(f"{r['id']}  attempts={r['attempts']}  {f.get('code', '')}: {f.get('message', '')}")
        if not rows:
            click.echo("no failed jobs")

    _out(rows, as_json, human)


@failed.command("retry")
@click.argument("queue")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Retry every failed job of QUEUE.")
@click.pass_obj
def failed_retry(obj: Ctx, queue: str, job_ids: tuple[str, ...], all_: bool) -> None:
    """Send failed jobs back to waiting with fresh retry budgets."""
    if not job_ids and not all_:
        raise click.UsageError("name job ids or pass --all")
    cli_support.require_queue(obj.manager, obj.host, queue)
    m = obj.manager
    n = m.retry_failed(queue) if all_ else sum(bool(m.retry_job(queue, j)) for j in job_ids)
    click.echo(f"retried {n} job(s)")


@failed.command("purge")
@click.argument("queue")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def failed_purge(obj: Ctx, queue: str, yes: bool) -> None:
    """Delete every failed job of QUEUE (asks first unless --yes)."""
    cli_support.require_queue(obj.manager, obj.host, queue)
    if not yes:
        n = obj.manager.get_queue_metrics(queue)["failed"]
        click.confirm(f"delete {n} failed job(s) of {queue} for good?", abort=True)
    click.echo(f"purged {obj.manager.purge(queue, 'failed')} job(s)")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def health(obj: Ctx, as_json: bool) -> None:
    """Exit 0 only when Redis answers, at least one worker is alive and fetching, and every prefork
    supervisor has all its children alive."""
    report = QueueManager(obj.settings, strict=False).health_check()

    def human(r: dict[str, Any]) -> None:
        click.echo(f"redis: {'ok' if r['redis'] else 'DOWN ' + r.get('error', '')}")
        for w in r["workers"]:
            click.echo(f"worker {w['id']}: {'alive' if w['alive'] else 'NOT ALIVE'} (heartbeat {w['age']}s ago)")
        for sup in r.get("supervisors", []):
            click.echo(f"supervisor {sup['id']}: {sup['alive']} of {sup['processes']} processes alive"
                       + ("" if sup["healthy"] else " (MISSING CHILDREN)"))
        click.echo("healthy" if r["healthy"] else "UNHEALTHY")

    _out(report, as_json, human)
    sys.exit(0 if report["healthy"] else 1)


@cli.command()
@click.option("-n", "--jobs", "n", default=20_000, show_default=True, help="No-op jobs to enqueue and drain.")
@click.option("--concurrency", default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def bench(obj: Ctx, n: int, concurrency: int, as_json: bool) -> None:
    """Enqueue and drain N no-op jobs on the configured Redis; print jobs/s and latency percentiles."""
    from .bench import run_bench

    result = run_bench(obj.settings, n=n, concurrency=concurrency)

    def human(r: dict[str, Any]) -> None:
        click.echo(f"enqueue (bulk):  {r['enqueue_per_s']:,.0f} jobs/s")
        click.echo(f"drain:           {r['drain_per_s']:,.0f} jobs/s (1 worker process, concurrency {concurrency})")
        click.echo(f"enqueue->start:  p50 {r['latency_ms']['p50']:.2f} ms  p99 {r['latency_ms']['p99']:.2f} ms "
                   f"({r['latency_samples']} jobs, one at a time)")

    _out(result, as_json, human)


cli.add_command(schedules)


def main() -> None:
    host = None
    try:
        host = PluginHost().load()
    except Exception as exc:  # never let a plugin stop the CLI from starting
        logging.getLogger(__name__).error("plugin loading failed: %s", exc)
    if host is not None:
        host.add_cli_commands(cli)
    cli(obj=Ctx(host))


if __name__ == "__main__":
    main()
