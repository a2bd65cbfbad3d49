"""Synthetic rrweb-shaped replays, for tests and the benchmark (real recordings: shared/corpora/replays)."""

from __future__ import annotations

import json
from typing import Any


def synthetic_events(count: int, *, start: int = 1_700_000_000_000, step_ms: float = 250,
                     snapshot_every: int = 200, snapshot_nodes: int = 1) -> list[dict[str, Any]]:
    """A Meta and a FullSnapshot every ``snapshot_every`` events, mouse moves between, ``step_ms`` apart.

    :param snapshot_nodes: elements in each FullSnapshot (about 90 bytes each): sets the replay's weight.
    """
    events: list[dict[str, Any]] = []
    for i in range(count):
        ts = start + round(i * step_ms)
        phase = i % snapshot_every
        if phase == 0:
            events.append({"type": 4, "data": {"href": "https://example.test/app", "width": 1280, "height": 720},
                           "timestamp": ts})
        elif phase == 1:
            nodes = [{"type": 2, "tagName": "div", "attributes": {"class": f"row r{n % 17}", "data-i": str(n)},
                      "childNodes": [{"type": 3, "textContent": f"item {n} of {snapshot_nodes}", "id": 2 * n + 3}],
                      "id": 2 * n + 2} for n in range(snapshot_nodes)]
            events.append({"type": 2, "data": {"node": {"type": 0, "childNodes": nodes, "id": 1},
                                               "initialOffset": {"left": 0, "top": 0}}, "timestamp": ts})
        else:
            events.append({"type": 3, "data": {"source": 1, "positions": [
                {"x": (i * 13) % 1280, "y": (i * 7) % 720, "id": 5, "timeOffset": -12.5}]}, "timestamp": ts})
    return events


def payload(events: Any, bug_report_id: str = "report-1", project_id: str = "project-1",
            privacy: Any = None) -> bytes:
    """The raw JSON payload a producer's ``{bugReportId, projectId, privacy, replayData}`` becomes."""
    body: dict[str, Any] = {"bugReportId": bug_report_id, "projectId": project_id}
    if privacy is not None:
        body["privacy"] = privacy
    body["replayData"] = events
    return json.dumps(body, separators=(",", ":")).encode()
