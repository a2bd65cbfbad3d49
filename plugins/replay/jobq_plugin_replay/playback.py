"""Read a stored replay back as a player does: the manifest, then each chunk in order.

The reference for players written in other languages, and the check used by the tests and the
benchmark that the concatenated chunks are the replay's events.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

from jobq.storage import Storage

from .manifest import MANIFEST_NAME


class CorruptReplay(ValueError):
    """A chunk does not match what the manifest says about it."""


def load_manifest(storage: Storage, folder: str) -> dict[str, Any]:
    return json.loads(storage.get(f"{folder}/{MANIFEST_NAME}"))


def iter_events(storage: Storage, folder: str, manifest: dict[str, Any] | None = None) -> Iterator[Any]:
    """Yield the replay's events chunk by chunk, checking each chunk against its manifest entry."""
    manifest = manifest or load_manifest(storage, folder)
    for entry in manifest["chunks"]:
        body = gzip.decompress(storage.get(f"{folder}/{entry['file']}"))
        events = json.loads(body)
        if (len(body) != entry["rawSize"] or len(events) != entry["eventCount"]
                or events[0]["timestamp"] != entry["firstTimestamp"]
                or events[-1]["timestamp"] != entry["lastTimestamp"]):
            raise CorruptReplay(f"{entry['file']} does not match the manifest")
        yield from events
