"""Check what the screenshot and replay jobs wrote, from the files on disk rather than their word."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
from PIL import Image

THUMBNAIL_SIZE = (320, 240)


@attrs.frozen
class OutputFile:
    path: Path
    size: int
    note: str


def local_path(url: str) -> Path:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        raise ValueError(f"not a local file URL: {url}")
    return Path(unquote(parsed.path))


def screenshot_files(result: dict[str, Any], problems: list[str]) -> list[OutputFile]:
    """The optimized image and the thumbnail: present, of the announced byte size and pixel size."""
    out = []
    expected = {"originalUrl": (result.get("width"), result.get("height")), "thumbnailUrl": THUMBNAIL_SIZE}
    for url_key, size_key, what in (("originalUrl", "originalSize", "optimized"), ("thumbnailUrl", "thumbnailSize",
                                                                                   "thumbnail")):
        path = local_path(result[url_key])
        if not path.is_file():
            problems.append(f"screenshot {what} image missing: {path}")
            continue
        size = path.stat().st_size
        with Image.open(path) as im:
            im.load()
            dims, fmt = im.size, im.format
        if size != result[size_key]:
            problems.append(f"screenshot {what}: {size} bytes on disk, result says {result[size_key]}")
        if tuple(dims) != tuple(expected[url_key]):
            problems.append(f"screenshot {what}: {dims[0]}x{dims[1]} on disk, expected {expected[url_key]}")
        out.append(OutputFile(path, size, f"{what} {fmt} {dims[0]}x{dims[1]}"))
    return out


def replay_files(result: dict[str, Any], sent_events: int, problems: list[str]) -> list[OutputFile]:
    """Every chunk gunzips to an event list; together they hold every event sent, as the manifest says."""
    folder = local_path(result["replayUrl"])
    manifest_path = local_path(result["metadataUrl"])
    out = []
    if not manifest_path.is_file():
        problems.append(f"replay manifest missing: {manifest_path}")
        return out
    manifest = json.loads(manifest_path.read_bytes())
    total = 0
    for entry in manifest["chunks"]:
        path = folder / entry["file"]
        if not path.is_file():
            problems.append(f"replay chunk missing: {path}")
            continue
        events = json.loads(gzip.decompress(path.read_bytes()))
        total += len(events)
        if len(events) != entry["eventCount"]:
            problems.append(f"{path.name}: {len(events)} events, manifest says {entry['eventCount']}")
        span = (entry["lastTimestamp"] - entry["firstTimestamp"]) / 1000
        out.append(OutputFile(path, path.stat().st_size,
                              f"{len(events)} events over {span:.1f} s ({entry['rawSize']:,} bytes of JSON)"))
    out.append(OutputFile(manifest_path, manifest_path.stat().st_size,
                          f"manifest: {manifest['chunkCount']} chunks, {manifest['eventCount']} events, "
                          f"{manifest['durationMs'] / 1000:.2f} s"))
    if total != sent_events or result["eventCount"] != sent_events:
        problems.append(f"replay: sent {sent_events} events, chunks hold {total}, result says {result['eventCount']}")
    if result["chunkCount"] != len(manifest["chunks"]):
        problems.append(f"replay: result says {result['chunkCount']} chunks, manifest lists {len(manifest['chunks'])}")
    return out
