"""scripts/wheels.sh builds every distribution; a screenshot worker installs offline without a web server."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = {re.search(r'^name = "([^"]+)"', (d / "pyproject.toml").read_text(), re.M).group(1)
       for d in [ROOT / "core", *ROOT.glob("libs/*"), *ROOT.glob("plugins/*")] if (d / "pyproject.toml").exists()}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def run(*args, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True, timeout=240, **kwargs)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    """dist/ as wheels.sh makes it: the project's wheels, then the third-party wheels they need.

    The full script collects the wheels of every distribution's dependencies from the index (minutes);
    here only the screenshot plugin's are collected, with the same pip command.
    """
    dist = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "JOBQ_WHEELS_NO_DEPS": "1", "PYTHON": sys.executable}
    out = run(ROOT / "scripts" / "wheels.sh", dist, env=env).stdout
    assert f"{len(OWN)} wheels" in out
    built = {p.name.split("-")[0].replace("_", "-") for p in dist.glob("*.whl")}
    assert built == {name.replace("_", "-") for name in OWN}
    run(sys.executable, "-m", "pip", "wheel", "-q", "--find-links", dist, "-w", dist, "jobq-plugin-screenshot",
        "hatchling>=1.18")
    return dist


def test_screenshot_worker_installs_offline_without_web_server(wheelhouse, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no index, no find-links from the machine's pip config: offline
    run(py, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheelhouse, "jobq-plugin-screenshot",
        env=env)
    installed = {row["name"].lower() for row in json.loads(run(py, "-m", "pip", "list", "--format=json",
                                                                env=env).stdout)}
    assert {"jobq", "jobq-bugreports", "jobq-plugin-screenshot", "pillow"} <= installed
    assert not installed & {"starlette", "uvicorn", "psycopg", "psycopg-binary", "psycopg-pool"}
    plugins = json.loads(run(venv / "bin" / "jobq", "plugins", "--json", env=env).stdout)
    by_name = {p["name"]: p for p in plugins}
    assert by_name["screenshot"]["queues"] == ["screenshots"] and by_name["screenshot"]["error"] is None
    # jobq-bugreports without its [api] extra: the command says which extra it needs, in one line.
    api = subprocess.run([venv / "bin" / "jobq", "api"], capture_output=True, text=True, timeout=60, env=env)
    assert api.returncode == 1
    assert "pip install 'jobq-bugreports[api]'" in api.stderr and "Traceback" not in api.stderr

    # A third-party plugin that depends on jobq>=0.1 builds from the wheelhouse alone.
    src = tmp_path / "jobq-plugin-hello"
    (src / "jobq_plugin_hello").mkdir(parents=True)
    (src / "jobq_plugin_hello" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling>=1.18"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "jobq-plugin-hello"\nversion = "0.1.0"\ndependencies = ["jobq>=0.1"]\n'
        '[project.entry-points."jobq.plugins"]\nhello = "jobq_plugin_hello"\n')
    out = tmp_path / "out"
    run(py, "-m", "pip", "wheel", "-q", "--no-index", "--find-links", wheelhouse, "-w", out, src, env=env)
    assert {p.name.split("-")[0] for p in out.glob("*.whl")} >= {"jobq_plugin_hello", "jobq"}
