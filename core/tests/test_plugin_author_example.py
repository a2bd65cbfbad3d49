"""The plugin-author example of docs/writing-a-plugin.md passes on fakeredis and on the real Redis.

Its tests run as a plugin author runs them: their own pytest, the example on the path, jobq.testing
loaded through its entry point; once with JOBQ_TEST_REDIS_URL unset (and a REDIS_URL pointing
nowhere, which the fixtures must ignore), once with it set to the real Redis.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "jobq-plugin-wordcount"
REAL = "redis://127.0.0.1:6379/0"


# pytest.main in a fresh interpreter, then which fake servers jobq created (none on the real Redis).
RUNNER = """
import sys, pytest, jobq.queue
rc = pytest.main(sys.argv[1:])
print("fake servers:", sorted(jobq.queue._FAKE_SERVERS))
sys.exit(rc)
"""


def run_example(env):
    env = {**env, "PYTHONPATH": str(EXAMPLE)}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, "-c", str(EXAMPLE / "pyproject.toml"), "--rootdir", str(EXAMPLE),
         str(EXAMPLE / "tests"), "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
        capture_output=True, text=True, timeout=120, env=env, cwd=EXAMPLE)


@pytest.mark.parametrize("where", ["fakeredis", "real redis"])
def test_example_passes(where):
    env = {k: v for k, v in os.environ.items() if k not in ("JOBQ_TEST_REDIS_URL", "REDIS_URL")}
    env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # a production URL in the shell: never used by the fixtures
    if where == "real redis":
        env["JOBQ_TEST_REDIS_URL"] = REAL
    proc = run_example(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    used = "fake servers: ['jobq-tests']" if where == "fakeredis" else "fake servers: []"
    assert used in proc.stdout


def test_example_is_the_code_of_the_doc():
    """docs/writing-a-plugin.md shows these files verbatim; a change to one must reach the other."""
    doc = (EXAMPLE.parents[1] / "writing-a-plugin.md").read_text()
    blocks = [body for _lang, body in re.findall(r"```(\w+)\n(.*?)```", doc, re.S)]
    for name in ("pyproject.toml", "jobq_plugin_wordcount/__init__.py", "jobq_plugin_wordcount/count.py",
                 "tests/test_wordcount_e2e.py"):
        assert (EXAMPLE / name).read_text() in blocks, f"{name} differs from its block in writing-a-plugin.md"
