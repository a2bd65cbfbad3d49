"""Every shell and Python block in README.md and docs/ runs, so a doc that lies fails the suite.

Rules the docs follow (docs/index.md says them to writers):

* A fence names its language. ```` ```bash ```` / ```` ```sh ```` blocks run with ``bash -euo pipefail``
  and ```` ```python ```` blocks with ``exec``; every other language (``text``, ``yaml``, ``toml``,
  ``json``, ``promql``...) is shown, not run. A fence without a language is an error.
* A block runs against the real Redis under a key prefix of its own (``REDIS_URL``, ``JOBQ_PREFIX``),
  in a scratch folder (so the default ``STORAGE_URL``, ``./jobq-storage``, is in it), with a SQLite
  ``DATABASE_URL``; the repository's ``.venv/bin`` comes first on ``PATH`` and ``JOBQ_REPO`` names
  the repository. What a block leaves running (``cmd &``) is stopped when it ends.
* The Python blocks of one page share one namespace, in page order, like a reader's session.
* ``<!-- run: background -->`` on the line above a bash block starts it and leaves it running for the
  rest of the page (``jobq run``, ``jobq api``); it is stopped with SIGTERM when the page is done.
* ``<!-- file: <path> -->`` on the line above a block (any language) writes the block to that path in
  the scratch folder instead of running it: the files a reader creates by hand.
* ``<!-- page: venv -->`` anywhere on a page gives the page a virtual environment of its own,
  layered over the repository's (every installed package stays importable): ``pip install`` there
  changes nothing outside, and ``jobq`` runs with what the page installed.
* ``<!-- not-run: <reason> -->`` on the line above a block means it cannot run here (it installs
  packages, needs a container engine, runs for minutes...). The reason is required and is reported
  as the skip reason of that block's test, so nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
RUN = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
SHOWN = {"text", "yaml", "yml", "toml", "json", "jsonc", "promql", "ini", "dockerfile", "http", "diff", "csv",
         "html", "javascript", "js", "typescript", "ts", "sql", "console-output", "mermaid"}
MARKER = re.compile(r"^<!--\s*(not-run|run|file):\s*(.*?)\s*-->$")
PAGE_VENV = "<!-- page: venv -->"
FENCE = re.compile(r"^(`{3,})([^\s`]*)\s*$")
BLOCK_TIMEOUT = 120


@attrs.frozen
class Block:
    page: str
    line: int
    lang: str
    code: str
    marker: tuple[str, str] | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    out, i = [], 0
    page = str(path.relative_to(ROOT))
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != m.group(1):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mm = MARKER.match(lines[k].strip()) if k >= 0 else None
        out.append(Block(page, i + 1, m.group(2).lower(), "\n".join(lines[i + 1:j]) + "\n",
                         (mm.group(1), mm.group(2)) if mm else None))
        i = j + 1
    return out


ALL = [b for p in pages() for b in blocks(p)]
RUNNABLE = [b for b in ALL if b.lang in RUN or (b.marker and b.marker[0] == "file")]
VENV_PAGES = {str(p.relative_to(ROOT)) for p in pages() if PAGE_VENV in p.read_text()}


def test_every_fence_names_a_known_language() -> None:
    bad = [f"{b.id} ```{b.lang}" for b in ALL if b.lang not in RUN and b.lang not in SHOWN]
    assert not bad, "fences need a language (bash, python, or text/yaml/... for what is not run): " + ", ".join(bad)


def test_markers_give_reasons_and_sit_on_runnable_blocks() -> None:
    for b in ALL:
        if b.marker is None:
            continue
        kind, value = b.marker
        if kind == "file":
            assert value and ".." not in value.split("/") and not value.startswith("/"), f"{b.id}: bad path"
            continue
        assert b.lang in RUN, f"{b.id}: a run marker on a block that is not run"
        if kind == "not-run":
            assert len(value) >= 10, f"{b.id}: not-run needs a reason"
        else:
            assert value == "background", f"{b.id}: unknown marker run: {value}"
            assert RUN[b.lang] == "bash", f"{b.id}: only bash blocks run in the background"


class Page:
    """One page's session: a scratch folder, an environment, a Python namespace, background jobs."""

    def __init__(self, tmp: Path, venv: bool = False) -> None:
        self.tmp = tmp
        self.prefix = f"jobqdoc-{uuid.uuid4().hex[:10]}"
        redis_url = os.environ.get("JOBQ_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"
        venv_bin = str(Path(sys.executable).parent)
        # a reader's shell: the suite's own test settings are not in it
        inherited = {k: v for k, v in os.environ.items() if k not in ("JOBQ_TEST_REDIS_URL", "STORAGE_URL")}
        self.env = {**inherited, "REDIS_URL": redis_url, "JOBQ_PREFIX": self.prefix,
                    "DATABASE_URL": f"sqlite:///{tmp / 'reports.db'}",
                    "JOBQ_REPO": str(ROOT), "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
                    "PYTHONUNBUFFERED": "1"}
        self.namespace: dict[str, Any] = {"__name__": "__doc__"}
        self.background: list[subprocess.Popen[bytes]] = []
        if venv:
            self.env["PATH"] = str(self._make_venv()) + os.pathsep + self.env["PATH"]

    def _make_venv(self) -> Path:
        """A venv whose site-packages also sees the repository's (a .pth line), with a ``jobq``
        that runs on the venv's interpreter, so plugins installed on the page are found."""
        import sysconfig

        venv = self.tmp / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        py = venv / "bin" / "python"
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip()
        # addsitedir, not a bare path: the repository's editable installs are .pth files of their own
        Path(site, "_jobq_repository.pth").write_text(
            f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
        jobq = venv / "bin" / "jobq"
        jobq.write_text(f"#!/bin/sh\nexec {py} -c 'from jobq.cli import main; main()' \"$@\"\n")
        jobq.chmod(0o755)
        return venv / "bin"

    def close(self) -> None:
        for p in self.background:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.background:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        try:
            for key in client.scan_iter(match=f"{self.prefix}:*", count=1000):
                client.delete(key)
        finally:
            client.close()


_sessions: dict[str, Page] = {}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Any:
    def get(page: str) -> Page:
        if page not in _sessions:
            for other in list(_sessions):  # pages run one after another: close the last one
                _sessions.pop(other).close()
            _sessions[page] = Page(tmp_path_factory.mktemp(re.sub(r"\W", "_", page)), venv=page in VENV_PAGES)
        return _sessions[page]

    yield get
    for s in _sessions.values():
        s.close()
    _sessions.clear()


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_doc_block_runs(block: Block, sessions: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.marker and block.marker[0] == "not-run":
        pytest.skip(f"{block.id} not run: {block.marker[1]}")
    s = sessions(block.page)
    if block.marker and block.marker[0] == "file":
        target = s.tmp / block.marker[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code)
        return
    if RUN[block.lang] == "bash":
        script = f"set -euo pipefail\n{block.code}"
        if block.marker == ("run", "background"):
            log = open(s.tmp / f"background-{block.line}.log", "wb")  # noqa: SIM115 (kept open for the process)
            s.background.append(subprocess.Popen(["bash", "-c", script], cwd=s.tmp, env=s.env, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True))
            return
        proc = subprocess.Popen(["bash", "-c", script], cwd=s.tmp, env=s.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the block and everything it started
            out, err = proc.communicate()
            pytest.fail(f"{block.id} still ran after {BLOCK_TIMEOUT}s (a server? mark it run: background)\n"
                        f"{err[-2000:]}")
        with contextlib.suppress(ProcessLookupError):  # what the block left running (`cmd &`)
            os.killpg(proc.pid, signal.SIGTERM)
        assert proc.returncode == 0, (f"{block.id} exited {proc.returncode}\n--- stdout\n{out[-3000:]}"
                                      f"\n--- stderr\n{err[-3000:]}")
        return
    for name in ("REDIS_URL", "JOBQ_PREFIX", "DATABASE_URL", "JOBQ_REPO"):
        monkeypatch.setenv(name, s.env[name])
    monkeypatch.delenv("STORAGE_URL", raising=False)
    monkeypatch.chdir(s.tmp)
    monkeypatch.syspath_prepend(str(s.tmp))
    exec(compile(block.code, block.id, "exec"), s.namespace)
