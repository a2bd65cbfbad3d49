"""Where a replay lives in storage, and the ``metadata.json`` manifest a player reads first.

Layout (keys built only from validated ids)::

    replays/{projectId}/{bugReportId}/metadata.json
    replays/{projectId}/{bugReportId}/chunk-001.json.gz
    replays/{projectId}/{bugReportId}/chunk-002.json.gz ...

Chunk entries name their file relative to the manifest, so the folder can move (another
bucket, a CDN in front) without rewriting it. A player fetches the manifest, then each chunk in
``chunks`` order, gunzips it and appends its array: the result is the replay's event list.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from jobq.storage import safe_key

from .chunking import Chunk

FORMAT = "jobq-rrweb-chunks"
VERSION = 2  # 2: chunks cut by activity (idleMs, maxChunkBytes), totals after the chunk list
ROOT = "replays"
MANIFEST_NAME = "metadata.json"
_CHUNK_FILE = re.compile(r"chunk-(\d{3,})\.json\.gz")


def replay_folder(project_id: str, bug_report_id: str) -> str:
    """The storage folder of one bug report's replay; raises ``UnsafeKey`` (ERR_UNSAFE_ID) for bad ids."""
    return safe_key(ROOT, project_id, bug_report_id)


def chunk_key(folder: str, chunk: Chunk) -> str:
    return f"{folder}/{chunk.name}"


def manifest_key(folder: str) -> str:
    return f"{folder}/{MANIFEST_NAME}"


def stale_chunk_keys(keys: Iterable[str], folder: str, chunk_count: int) -> list[str]:
    """Chunk files under ``folder`` numbered past ``chunk_count``: leftovers of a longer earlier run."""
    stale = []
    for key in keys:
        parent, _, name = key.rpartition("/")
        m = _CHUNK_FILE.fullmatch(name)
        if parent == folder and m and int(m.group(1)) > chunk_count:
            stale.append(key)
    return stale


def number(value: float) -> int | float:
    """Timestamps were read as JSON numbers: whole ones go back out as integers."""
    return int(value) if value.is_integer() else value


def chunk_entry(chunk: Chunk) -> dict[str, Any]:
    return {
        "index": chunk.index,
        "file": chunk.name,
        "firstTimestamp": number(chunk.first_timestamp),
        "lastTimestamp": number(chunk.last_timestamp),
        "eventCount": chunk.event_count,
        "size": chunk.size,
        "rawSize": chunk.raw_size,
    }


class ManifestWriter:
    """Writes ``metadata.json`` to a local file entry by entry: memory holds running totals, not the entries.

    The chunk list comes first and the totals after it (JSON key order means nothing to a
    parser), so a replay of 10,000 chunks costs no more memory than one of 3. Use as a context
    manager; :attr:`path` is then the file to upload, and :attr:`summary` the totals.
    """

    def __init__(self, *, bug_report_id: str, project_id: str, window_ms: float, idle_ms: float,
                 max_chunk_bytes: int, gzip_level: int, created_at: datetime | None = None) -> None:
        self._file = tempfile.NamedTemporaryFile(prefix="jobq-replay-manifest-", suffix=".json", delete=False)  # noqa: SIM115
        self.path = self._file.name
        self.created_at = (created_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        head = {
            "format": FORMAT,
            "version": VERSION,
            "bugReportId": bug_report_id,
            "projectId": project_id,
            "createdAt": self.created_at,
            "compression": "gzip",
            "gzipLevel": gzip_level,
            "chunkWindowMs": number(float(window_ms)),
            "idleMs": number(float(idle_ms)),
            "maxChunkBytes": max_chunk_bytes,
        }
        self._file.write(orjson.dumps(head)[:-1] + b',"chunks":[')
        self.chunk_count = self.event_count = self.total_size = self.total_raw_size = 0
        self.first: int | float | None = None
        self.last: int | float | None = None
        self.largest_gap: int | float = 0

    def add(self, chunk: Chunk) -> None:
        entry = chunk_entry(chunk)
        if self.chunk_count:
            self._file.write(b",")
            self.largest_gap = max(self.largest_gap, entry["firstTimestamp"] - self.last)
        else:
            self.first = entry["firstTimestamp"]
        self._file.write(orjson.dumps(entry))
        self.last = entry["lastTimestamp"]
        self.chunk_count += 1
        self.event_count += chunk.event_count
        self.total_size += chunk.size
        self.total_raw_size += chunk.raw_size

    def finish(self, *, out_of_order: int, masking: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the totals and close the file; returns them (the manifest without its chunk list)."""
        summary: dict[str, Any] = {
            "eventCount": self.event_count,
            "chunkCount": self.chunk_count,
            "firstTimestamp": self.first,
            "lastTimestamp": self.last,
            "durationMs": (self.last - self.first) if self.chunk_count else 0,  # type: ignore[operator]
            "largestGapMs": self.largest_gap,
            "totalSize": self.total_size,
            "totalRawSize": self.total_raw_size,
            "reordered": out_of_order > 0,
            "outOfOrderEvents": out_of_order,
        }
        if masking is not None:
            summary["masking"] = masking
        self._file.write(b"]," + orjson.dumps(summary)[1:])
        self._file.close()
        return {"createdAt": self.created_at, **summary}

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
