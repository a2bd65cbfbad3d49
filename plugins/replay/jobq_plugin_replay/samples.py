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


FORM_T0 = 1_700_000_000_000


def element(nid: int, tag: str, attributes: dict[str, Any] | None = None, children: list | None = None) -> dict:
    """An rrweb serialized element node."""
    return {"type": 2, "tagName": tag, "attributes": attributes or {}, "childNodes": children or [], "id": nid}


def text(nid: int, content: str) -> dict:
    """An rrweb serialized text node."""
    return {"type": 3, "textContent": content, "id": nid}


def form_recording() -> list[dict[str, Any]]:
    """A page with every kind of field, as rrweb records it without masking, then typing into it."""
    body = element(5, "body", {}, [
        element(10, "input", {"type": "text", "value": "Ada Lovelace"}),
        element(11, "input", {"type": "password", "value": "hunter2"}),
        element(12, "input", {"type": "range", "value": "42"}),
        element(13, "input", {"value": "no type is text"}),
        element(14, "textarea", {"value": "my address"}, [text(15, "my address")]),
        element(16, "select", {"value": "b"}, [element(17, "option", {"value": "a"}, [text(18, "A")]),
                                               element(19, "option", {"value": "b", "selected": True},
                                                       [text(20, "B")])]),
        element(21, "p", {"class": "note rr-mask"}, [text(22, "Card 4242 4242"), element(23, "b", {}, [
            text(24, "secret")])]),
        element(25, "div", {"data-private": ""}, [text(26, "private words")]),
        element(27, "p", {}, [text(28, "Welcome back")]),
        element(29, "input", {"type": "text", "data-rr-is-password": "true", "value": "shown pw"}),
        element(30, "style", {"class": "rr-mask"}, [text(31, "p { color: red }")]),
        element(32, "input", {"type": "checkbox", "value": "on", "checked": True}),
    ])
    doc = {"type": 0, "childNodes": [{"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2},
                                      element(3, "html", {}, [element(4, "head"), body])], "id": 1}

    def inc(ts: int, data: dict) -> dict:
        return {"type": 3, "data": data, "timestamp": FORM_T0 + ts}

    def mutation(**kw: Any) -> dict:
        return {"source": 0, "texts": [], "attributes": [], "removes": [], "adds": [], **kw}

    return [
        {"type": 4, "data": {"href": "https://shop.test/checkout", "width": 800, "height": 600}, "timestamp": FORM_T0},
        {"type": 2, "data": {"node": doc, "initialOffset": {"left": 0, "top": 0}}, "timestamp": FORM_T0},
        inc(100, {"source": 5, "text": "Ada Lovelace!", "isChecked": False, "id": 10}),
        inc(200, {"source": 5, "text": "hunter22", "isChecked": False, "id": 11}),
        inc(300, {"source": 5, "text": "57", "isChecked": False, "id": 12}),
        inc(400, {"source": 5, "text": "b", "isChecked": False, "id": 16}),
        inc(500, {"source": 5, "text": "on", "isChecked": False, "id": 32}),
        inc(600, mutation(texts=[{"id": 22, "value": "Card 5555"}, {"id": 28, "value": "Welcome, Ada"}],
                          attributes=[{"id": 14, "attributes": {"value": "my new address"}},
                                      {"id": 27, "attributes": {"value": "1"}}])),
        inc(700, mutation(adds=[{"parentId": 21, "nextId": None, "node": text(40, "added secret")},
                                {"parentId": 5, "nextId": None, "node": element(41, "input", {"value": "new"})},
                                {"parentId": 16, "nextId": None,
                                 "node": element(42, "option", {"value": "c", "selected": True})}])),
        inc(800, {"source": 5, "text": "typed later", "isChecked": False, "id": 41}),
        inc(900, {"source": 5, "text": "unknown node", "isChecked": False, "id": 999}),
        inc(950, mutation(attributes=[{"id": 12, "attributes": {"type": "password"}}])),
        inc(990, {"source": 5, "text": "58", "isChecked": False, "id": 12}),
    ]


def payload(events: Any, bug_report_id: str = "report-1", project_id: str = "project-1",
            privacy: Any = None) -> bytes:
    """The raw JSON payload a producer's ``{bugReportId, projectId, privacy, replayData}`` becomes."""
    body: dict[str, Any] = {"bugReportId": bug_report_id, "projectId": project_id}
    if privacy is not None:
        body["privacy"] = privacy
    body["replayData"] = events
    return json.dumps(body, separators=(",", ":")).encode()
