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

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from jobq.storage import safe_key

from .chunking import Chunk

FORMAT = "jobq-rrweb-chunks"
VERSION = 1
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


def build_manifest(*, bug_report_id: str, project_id: str, chunks: list[dict[str, Any]], window_ms: float,
                   gzip_level: int, out_of_order: int, created_at: datetime | None = None) -> dict[str, Any]:
    """The manifest of a replay from its chunk entries (see :func:`chunk_entry`)."""
    first = chunks[0]["firstTimestamp"] if chunks else None
    last = chunks[-1]["lastTimestamp"] if chunks else None
    largest_gap = 0
    for before, after in pairwise(chunks):
        largest_gap = max(largest_gap, after["firstTimestamp"] - before["lastTimestamp"])
    return {
        "format": FORMAT,
        "version": VERSION,
        "bugReportId": bug_report_id,
        "projectId": project_id,
        "createdAt": (created_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "compression": "gzip",
        "gzipLevel": gzip_level,
        "chunkWindowMs": number(float(window_ms)),
        "eventCount": sum(c["eventCount"] for c in chunks),
        "chunkCount": len(chunks),
        "firstTimestamp": first,
        "lastTimestamp": last,
        "durationMs": (last - first) if chunks else 0,
        "largestGapMs": largest_gap,
        "totalSize": sum(c["size"] for c in chunks),
        "totalRawSize": sum(c["rawSize"] for c in chunks),
        "reordered": out_of_order > 0,
        "outOfOrderEvents": out_of_order,
        "chunks": chunks,
    }
