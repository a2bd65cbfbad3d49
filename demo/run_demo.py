"""The one-command demo: a real bug report processed end to end by jobq.

Starts ``jobq run`` (every installed plugin) and ``jobq api`` as separate processes against a Redis
(``REDIS_URL``, or one started for the demo), posts a bug report carrying a real screenshot and a
real rrweb recording, follows every job to ``completed``, checks the files the jobs wrote, prints
``jobq stats``, then stops everything and deletes the demo's Redis keys. A webhook notification
goes to a receiver on 127.0.0.1 and a GitHub issue to a local fake GitHub, so nothing leaves the
machine. Exits 0 only when every job completed and every check passed.

Run it with ``./scripts/demo.sh`` (installs first) or ``.venv/bin/python demo/run_demo.py``.
Everything it writes is under ``.demo/`` (storage, SQLite database, process logs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import demo_inputs
import demo_outputs
import demo_redis
import httpx
import redis
from jobq import Settings
from jobq.plugins import PluginHost, load_plugins
from jobq.queue import QueueManager
from webhook_receiver import WebhookReceiver, new_secret

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".demo"
PROJECT = "demo"
GITHUB_REPO = "demo/shop"
REQUIRED_QUEUES = ("screenshots", "replays")
TERMINAL = ("completed", "failed", "unknown")
# One report needs no parallelism: one child process per CPU-bound queue instead of 5 + 3 keeps the
# first job's wait short (a process pool starts all its children when its first job arrives).
RUN_ARGS = ["run", "--concurrency", "screenshots=1", "--concurrency", "replays=1"]


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def __call__(self, message: str) -> None:
        print(f"[{self.elapsed():5.1f}s] {message}", flush=True)


class Service:
    """A jobq command run as a child process, its output in a log file; stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=REPO, stdin=subprocess.DEVNULL)
        self.exit_code: int | None = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a graceful exit, SIGKILL past ``timeout``; returns the exit code."""
        if self.exit_code is None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.exit_code = self.proc.returncode
            self._log.close()
        return self.exit_code

    def tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text[-lines:])


@attrs.define
class Setup:
    """Everything the services need, decided before they start."""

    env: dict[str, str]
    api_key: str
    read_key: str
    api_port: int
    hook: WebhookReceiver | None = None
    github: Any = None


def jobq_command() -> list[str]:
    script = Path(sys.executable).parent / "jobq"
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobq.cli"]


def wait_until(predicate: Callable[[], Any], seconds: float, what: str, alive: Callable[[], bool]) -> None:
    """Poll ``predicate`` until true; fail at the deadline or as soon as ``alive()`` turns false."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if not alive():
            raise RuntimeError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {seconds:.0f} s")
        time.sleep(0.05)


def flatten_jobs(jobs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"screenshots": view, "integrations": {"github": view}}`` -> ``{"screenshots": view,
    "integrations/github": view}``."""
    out = {}
    for queue, entry in jobs.items():
        if "state" in entry:
            out[queue] = entry
        else:
            out.update({f"{queue}/{name}": view for name, view in entry.items()})
    return out


def seconds_between(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return f"{delta.total_seconds():.2f}s"


def describe_result(label: str, result: Any) -> str:
    """One line per job saying what it produced."""
    if not isinstance(result, dict):
        return json.dumps(result)
    queue = label.split("/")[0]
    if queue == "screenshots":
        return (f"{result['width']}x{result['height']} optimized image of {result['originalSize']:,} bytes, "
                f"thumbnail of {result['thumbnailSize']:,} bytes")
    if queue == "replays":
        return (f"{result['eventCount']} events in {result['chunkCount']} chunks, "
                f"{result['totalSize']:,} bytes gzip'd")
    if queue == "integrations":
        return f"{result['platform']} issue {result['externalId']} {result['status']}: {result['externalUrl']}"
    if queue == "notifications":
        return f"{result['type']}: {result['successCount']} of {result['recipientCount']} recipient(s) notified"
    return json.dumps(result)


def delete_prefix(url: str, prefix: str) -> None:
    """Delete the demo's own keys (``<prefix>:*``), nothing else."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        n = sum(client.delete(key) for key in client.scan_iter(match=f"{prefix}:*", count=1000))
        print(f"  removed {n} Redis keys under {prefix}:*")
    except redis.RedisError as exc:
        print(f"  could not remove the Redis keys under {prefix}:* ({type(exc).__name__})")
    finally:
        client.close()


def check_plugins() -> PluginHost:
    host = load_plugins()
    missing = [q for q in REQUIRED_QUEUES if q not in host.specs]
    if missing or host.failures:
        broken = "; ".join(f"{n}: {e}" for n, e in host.failures.items())
        raise RuntimeError(f"plugins missing or broken (queues missing: {', '.join(missing) or 'none'}"
                           f"{'; ' + broken if broken else ''}); run ./scripts/setup.sh")
    return host


def prepare(stack: contextlib.ExitStack, host: PluginHost, inputs: demo_inputs.Inputs) -> Setup:
    """Pick Redis, start the local webhook receiver and fake GitHub, write the projects file, print it all."""
    chosen = demo_redis.choose(WORK / "redis")
    stack.callback(chosen.stop)
    prefix = f"jobq-demo-{secrets.token_hex(4)}"
    stack.callback(delete_prefix, chosen.url, prefix)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WORKER_") and k not in ("JOBQ_DISABLE_PLUGINS", "STORAGE_PUBLIC_URL")}
    setup = Setup(env=env, api_key=secrets.token_urlsafe(24), read_key=secrets.token_urlsafe(24),
                  api_port=demo_redis.free_port())
    env.update({
        "REDIS_URL": chosen.url,
        "JOBQ_PREFIX": prefix,
        "STORAGE_URL": str(WORK / "storage"),
        "DATABASE_URL": f"sqlite:///{WORK / 'reports.db'}",
        "JOBQ_API_KEYS": f"{PROJECT}:{setup.api_key}",  # ingest: can only create reports
        "JOBQ_API_READ_KEYS": f"{PROJECT}:{setup.read_key}",  # reads the jobs' progress
        "JOBQ_PROJECTS_FILE": str(WORK / "projects.json"),
        "JOBQ_OUTBOUND_ALLOWLIST": "127.0.0.1",
        "JOBQ_SHUTDOWN_GRACE": "10",
    })
    project: dict[str, Any] = {}
    if "notifications" in host.specs:
        secret = new_secret()
        setup.hook = stack.enter_context(WebhookReceiver(secret))
        env["WEBHOOK_SECRET"] = secret
        project["notifications"] = [{"type": "webhook", "recipients": [setup.hook.url]}]
    if "integrations" in host.specs:
        from jobq_plugin_integration.testing import FakeGitHub

        token = "ghp_demo_" + secrets.token_hex(16)
        setup.github = stack.enter_context(FakeGitHub(token=token, repos=(GITHUB_REPO,)))
        env["JOBQ_INTEGRATION_ALLOW_HTTP"] = "1"  # the fake speaks plain HTTP on loopback
        owner, repo = GITHUB_REPO.split("/")
        project["integrations"] = [{"platform": "github", "credentials": {"token": token},
                                    "config": {"owner": owner, "repo": repo, "apiUrl": setup.github.api_url}}]
    (WORK / "projects.json").write_text(json.dumps({PROJECT: project}, indent=2))

    print(f"  redis       {chosen.label}, key prefix {prefix}")
    print(f"  storage     {env['STORAGE_URL']}")
    print(f"  database    {env['DATABASE_URL']}")
    if setup.hook is not None:
        print(f"  webhook     {setup.hook.url} (receiver in this process, checks signatures)")
    if setup.github is not None:
        print(f"  github      {setup.github.api_url} (local fake GitHub, repository {GITHUB_REPO})")
    print(f"  screenshot  {inputs.screenshot_path} ({len(inputs.screenshot):,} bytes)")
    print(f"  replay      {inputs.replay_path} ({len(inputs.events)} events over {inputs.span_seconds:.1f} s)")
    served = [f"{name} ({', '.join(p.queues)})" for name, p in host.plugins.items() if p.queues]
    print(f"  plugins     {', '.join(served)}")
    return setup


def start_services(stack: contextlib.ExitStack, setup: Setup, log: Clock) -> tuple[list[Service], httpx.Client]:
    """Start ``jobq run`` and ``jobq api``; return once the API is healthy and a worker is alive."""
    cmd = jobq_command()
    log.t0 = time.monotonic()
    worker = Service("jobq run", [*cmd, *RUN_ARGS], setup.env, WORK / "worker.log")
    api = Service("jobq api", [*cmd, "api", "--host", "127.0.0.1", "--port", str(setup.api_port)], setup.env,
                  WORK / "api.log")
    services = [worker, api]
    stack.callback(lambda: [s.stop() for s in services])
    log(f"started `jobq {' '.join(RUN_ARGS)}` (pid {worker.proc.pid})")
    log(f"started `jobq api --port {setup.api_port}` (pid {api.proc.pid})")
    manager = stack.enter_context(QueueManager(Settings.from_env(setup.env), strict=False))
    client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{setup.api_port}", timeout=30.0,
                                              headers={"X-API-Key": setup.read_key}))

    def api_healthy() -> bool:
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(api_healthy, 30, "jobq api", api.running)
        wait_until(lambda: any(w["alive"] for w in manager.list_workers()), 30, "jobq run", worker.running)
    except RuntimeError:
        for s in services:
            print(f"  --- {s.name} log ({s.log_path}) ---\n{s.tail()}")
        raise
    log("worker alive and API healthy")
    return services, client


def post_report(client: httpx.Client, api_key: str, inputs: demo_inputs.Inputs, log: Clock) -> str:
    body = {
        "title": "Checkout button does nothing",
        "description": "Clicked 'Pay now' twice; no request in the network tab.",
        "severity": "high",
        "url": "https://shop.example/checkout",
        "screenshot": inputs.data_url,
        "sessionReplay": {"events": inputs.events},
    }
    resp = client.post("/api/v1/reports", json=body, headers={"X-API-Key": api_key})
    if resp.status_code != 201:
        raise RuntimeError(f"POST /api/v1/reports answered {resp.status_code}: {resp.text[:500]}")
    report_id: str = resp.json()["id"]
    log(f"POST /api/v1/reports -> 201, report {report_id}")
    return report_id


def follow_jobs(client: httpx.Client, report_id: str, worker: Service, timeout: float, log: Clock,
                problems: list[str]) -> dict[str, dict[str, Any]]:
    """Poll the report until every job is finished (or the deadline), printing each change."""
    deadline = time.monotonic() + timeout
    seen: dict[str, tuple[str, str]] = {}
    while True:
        jobs = flatten_jobs(client.get(f"/api/v1/reports/{report_id}").json()["jobs"])
        for label, view in jobs.items():
            progress = json.dumps(view.get("progress"))
            if seen.get(label) != (view["state"], progress):
                seen[label] = (view["state"], progress)
                log(f"{label:<24} {view['state']:<10} progress {progress}")
        if all(v["state"] in TERMINAL for v in jobs.values()):
            return jobs
        if time.monotonic() > deadline:
            problems.append(f"jobs not finished after {timeout:.0f} s")
            return jobs
        if not worker.running():
            problems.append("jobq run exited while jobs were pending")
            return jobs
        time.sleep(0.1)


def print_jobs(jobs: dict[str, dict[str, Any]], problems: list[str]) -> None:
    print("\njobs")
    print(f"  {'queue':<24}{'state':<11}{'attempts':>8}{'wait':>8}{'run':>8}  id")
    for label, v in jobs.items():
        print(f"  {label:<24}{v['state']:<11}{v.get('attempts', 0):>8}"
              f"{seconds_between(v.get('createdAt'), v.get('startedAt')):>8}"
              f"{seconds_between(v.get('startedAt'), v.get('finishedAt')):>8}  {v['id']}")
        if v["state"] != "completed":
            failure = v.get("failure") or {}
            problems.append(f"{label} is {v['state']}: {failure.get('code', '')} {failure.get('message', '')}")
    print("\nresults")
    for label, v in jobs.items():
        if v["state"] == "completed":
            print(f"  {label:<24}{describe_result(label, v['result'])}")


def check_outputs(jobs: dict[str, dict[str, Any]], inputs: demo_inputs.Inputs, setup: Setup,
                  problems: list[str]) -> None:
    """The files on disk, the webhook deliveries and the GitHub issue, each checked."""
    files: list[demo_outputs.OutputFile] = []
    if jobs.get("screenshots", {}).get("state") == "completed":
        files += demo_outputs.screenshot_files(jobs["screenshots"]["result"], problems)
    if jobs.get("replays", {}).get("state") == "completed":
        files += demo_outputs.replay_files(jobs["replays"]["result"], len(inputs.events), problems)
    print(f"\noutput files (under {WORK / 'storage'})")
    for f in files:
        print(f"  {f.path.relative_to(WORK / 'storage')!s:<60}{f.size:>9,} B  {f.note}")

    if setup.hook is not None:
        ok = sum(d.verified for d in setup.hook.deliveries)
        print(f"\nwebhook receiver: {len(setup.hook.deliveries)} delivery(ies), {ok} with a valid signature")
        for d in setup.hook.deliveries:
            title = d.event.get("data", {}).get("report", {}).get("title")
            print(f"  {d.webhook_id}  {d.event.get('type')}  {title!r}")
        if "notifications/webhook" in jobs and ok < 1:
            problems.append("the webhook receiver got no correctly signed delivery")
    if setup.github is not None:
        issues = setup.github.issues.get(GITHUB_REPO, {})
        print(f"fake GitHub: {len(issues)} issue(s) in {GITHUB_REPO}")
        for number, issue in sorted(issues.items()):
            print(f"  #{number} {issue.get('title')!r}")
        if "integrations/github" in jobs and len(issues) != 1:
            problems.append(f"expected 1 GitHub issue, found {len(issues)}")


def shutdown(services: list[Service], problems: list[str]) -> None:
    print("\nshutdown")
    for s in services:
        started = time.monotonic()
        code = s.stop()
        print(f"  {s.name} exited {code} {time.monotonic() - started:.1f} s after SIGTERM"
              + ("" if code == 0 else " (NOT CLEAN)"))
        if code != 0:
            problems.append(f"{s.name} exited {code}")
            print(s.tail())


def run(args: argparse.Namespace, stack: contextlib.ExitStack, log: Clock, problems: list[str]) -> None:
    host = check_plugins()
    inputs = demo_inputs.load(REPO)
    print("jobq demo: one bug report, end to end", flush=True)
    setup = prepare(stack, host, inputs)
    services, client = start_services(stack, setup, log)
    report_id = post_report(client, setup.api_key, inputs, log)
    jobs = follow_jobs(client, report_id, services[0], args.timeout, log, problems)
    with QueueManager(Settings.from_env(setup.env), strict=False) as manager:
        # The API shows only public URLs; the files' local paths are in the job results in Redis.
        for view in jobs.values():
            job = manager.get_job(view["queue"], view["id"]) if view.get("state") == "completed" else None
            if job is not None:
                view["result"] = job.result
    print_jobs(jobs, problems)
    check_outputs(jobs, inputs, setup, problems)
    metadata = client.get(f"/api/v1/reports/{report_id}").json().get("metadata", {})
    print(f"report metadata recorded by the workers: {', '.join(sorted(metadata)) or 'none'}")

    print("\njobq stats")
    stats = subprocess.run([*jobq_command(), "stats"], env=setup.env, capture_output=True, text=True,
                           timeout=60, cwd=REPO)
    print("\n".join(f"  {line}" for line in stats.stdout.splitlines()))
    if stats.returncode != 0:
        problems.append(f"jobq stats exited {stats.returncode}: {stats.stderr.strip()[-300:]}")
    show_dashboard(setup, args.dashboard, services)
    shutdown(services, problems)


def show_dashboard(setup: Setup, serve: bool, services: list[Service]) -> None:
    """Say how to open the dashboard on the demo's Redis; with --dashboard, serve it until Enter."""
    env = setup.env
    command = (f"REDIS_URL={env['REDIS_URL']} JOBQ_PREFIX={env['JOBQ_PREFIX']} .venv/bin/jobq dashboard "
               f"--insecure-no-auth --host 127.0.0.1 --port 8650")
    print("\ndashboard (docs/dashboard.md)")
    if not serve:
        print("  run the demo with --dashboard to browse this run before it cleans up, or open one on the")
        print(f"  demo's Redis while it runs:\n    {command}\n  then http://127.0.0.1:8650/")
        return
    port = demo_redis.free_port()
    dash = Service("jobq dashboard", [*jobq_command(), "dashboard", "--insecure-no-auth", "--host", "127.0.0.1",
                                      "--port", str(port)], env, WORK / "dashboard.log")
    services.append(dash)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 30, "jobq dashboard", dash.running)
    print(f"  open http://127.0.0.1:{port}/ (no sign-in: loopback only); press Enter to stop and clean up")
    try:
        input()
    except EOFError:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds the jobs may take once the report is posted (default 60)")
    parser.add_argument("--dashboard", action="store_true",
                        help="serve the web dashboard on this run's Redis until Enter is pressed")
    args = parser.parse_args(argv)
    if WORK.exists():
        shutil.rmtree(WORK)  # the demo's own scratch folder (git-ignored), fresh for every run
    WORK.mkdir()
    log = Clock()
    problems: list[str] = []
    try:
        with contextlib.ExitStack() as stack:
            run(args, stack, log, problems)
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    if problems:
        print("\ndemo FAILED:")
        for p in problems:
            print(f"  - {p}")
        print(f"  logs: {WORK / 'worker.log'}, {WORK / 'api.log'}")
        return 1
    print(f"\ndemo OK: every job completed and every output checked, {log.elapsed():.1f} s after the services "
          f"started. Files are in {WORK}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
