"""Fixtures for the replay plugin's tests: the rrweb corpus, job contexts, an isolated environment."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from jobq import JobContext
from jobq.storage import Storage
from jobq_plugin_replay import process

REPLAY_ENV = ("REPLAY_MAX_BYTES", "REPLAY_MAX_EVENTS", "REPLAY_MAX_DEPTH", "REPLAY_CHUNK_SECONDS",
              "REPLAY_IDLE_SECONDS", "REPLAY_MAX_CHUNK_BYTES", "REPLAY_MAX_CHUNKS", "REPLAY_GZIP_LEVEL",
              "REPLAY_SPOOL_MEMORY_BYTES")


def _corpus_dir() -> Path | None:
    repo = Path(__file__).resolve().parents[3]
    for candidate in (os.environ.get("JOBQ_SHARED_DIR"), repo.parent / "shared", "/work/shared"):
        if candidate and (Path(candidate) / "corpora" / "replays" / "MANIFEST.tsv").is_file():
            return Path(candidate) / "corpora" / "replays"
    return None


@pytest.fixture(scope="session")
def corpus() -> Path:
    """shared/corpora/replays (real rrweb recordings), found beside the repository."""
    found = _corpus_dir()
    if found is None:
        pytest.skip("shared/corpora/replays not found (set JOBQ_SHARED_DIR)")
    return found


@pytest.fixture(scope="session")
def corpus_rows(corpus: Path) -> list[dict[str, str]]:
    with open(corpus / "MANIFEST.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


class Progress(list):
    """Collects ``job.progress(...)`` values."""

    def __call__(self, value: Any) -> None:
        self.append(value)


@pytest.fixture
def make_job() -> Callable[..., tuple[JobContext, Progress]]:
    """A handler's ``job`` for a raw payload (inline) or an opener (claim-checked)."""

    def make(raw: bytes | None = None, *, opener: Callable[[], IO[bytes]] | None = None,
             job_id: str = "job-1", attempt: int = 1) -> tuple[JobContext, Progress]:
        progress = Progress()
        ctx = JobContext(id=job_id, queue="replays", name="", attempt=attempt, created_at=0.0, token="t",
                         raw=raw, opener=opener, progress=progress)
        return ctx, progress

    return make


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Storage and bug-report store in ``tmp_path``; closes the plugin's cached clients afterwards."""
    storage_dir = tmp_path / "storage"
    monkeypatch.setenv("STORAGE_URL", str(storage_dir))
    monkeypatch.delenv("STORAGE_PUBLIC_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'reports.db'}")
    for name in REPLAY_ENV:
        monkeypatch.delenv(name, raising=False)
    yield {"storage_dir": storage_dir, "storage": Storage(str(storage_dir)), "tmp": tmp_path}
    process.close_cached_clients()


@pytest.fixture(scope="module")
def browser(chromium: Any) -> Any:
    """Headless Chromium (the Debian package, driven by Playwright): ``jobq.testing``'s one per module."""
    return chromium
