"""The demo's input: a real browser screenshot and a real rrweb recording.

Taken from the shared corpora beside the repository (``../shared/corpora``) when they are there,
else from the copies bundled in ``demo/samples/`` (provenance in its README).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import attrs

HERE = Path(__file__).resolve().parent
SCREENSHOT = "lorem_ipsum_screenshot.png"
RECORDING = "rrweb-player-demoit-2018.json"


@attrs.frozen
class Inputs:
    screenshot_path: Path
    screenshot: bytes
    replay_path: Path
    events: list[dict[str, Any]]

    @property
    def data_url(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.screenshot).decode()

    @property
    def span_seconds(self) -> float:
        stamps = [e["timestamp"] for e in self.events if isinstance(e.get("timestamp"), int | float)]
        return (max(stamps) - min(stamps)) / 1000 if stamps else 0.0


def corpora_candidates(repo: Path) -> list[Path]:
    return [repo.parent / "shared" / "corpora", Path("/work/shared/corpora")]


def load(repo: Path) -> Inputs:
    for root in corpora_candidates(repo):
        shot, replay = root / "images" / "valid" / SCREENSHOT, root / "replays" / RECORDING
        if shot.is_file() and replay.is_file():
            return Inputs(shot, shot.read_bytes(), replay, json.loads(replay.read_bytes()))
    samples = HERE / "samples"
    shot, replay = samples / SCREENSHOT, samples / f"{RECORDING}.gz"
    return Inputs(shot, shot.read_bytes(), replay, json.loads(gzip.decompress(replay.read_bytes())))
