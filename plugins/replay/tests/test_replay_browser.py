"""Masked replays still play: rrweb's Replayer in headless Chromium, and the replayed DOM shows the masks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobq_plugin_replay.playback import iter_events
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import form_recording, payload

RRWEB = Path(__file__).parent / "browser" / "rrweb-2.2.2.umd.min.js"
RRWEB_CSS = Path(__file__).parent / "browser" / "rrweb-2.2.2.min.css"

# Replays the events to their end (pause at the last offset applies them all), then reads the replayed
# nodes through the Replayer's mirror by their recorded ids, and every form field of the replayed page.
PLAY = """async ([events, ids]) => {
  const replayer = new rrweb.Replayer(events, {root: document.getElementById("root"), showWarning: false,
                                               mouseTail: false, triggerFocus: false});
  const total = replayer.getMetaData().totalTime;
  replayer.pause(total);
  // the first snapshot may be rebuilt on a timer: wait for the page's body, 5 s at most
  const built = () => replayer.iframe.contentDocument.body && replayer.iframe.contentDocument.body.childNodes.length;
  for (const deadline = performance.now() + 5000; !built() && performance.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const mirror = replayer.getMirror();
  const doc = replayer.iframe.contentDocument;
  const out = {total, nodes: {}, text: doc.body ? doc.body.textContent : null,
               fields: Array.from(doc.querySelectorAll("input, textarea, select"), (f) => [f.tagName, f.value])};
  for (const id of ids) {
    const node = mirror.getNode(id);
    out.nodes[id] = node === null ? null : {value: node.value === undefined ? null : node.value,
                                            text: node.nodeType === 3 ? node.textContent : null,
                                            selected: node.selected === undefined ? null : node.selected};
  }
  return out;
}"""


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A blank page with rrweb loaded; any network request is refused (recordings name real sites' assets)."""
    context = browser.new_context()
    context.route("**/*", lambda route: route.abort())
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not msg.text.startswith(
        "Failed to load resource") else None)
    page.set_content('<!doctype html><html><body><div id="root"></div></body></html>')
    page.add_style_tag(path=str(RRWEB_CSS))
    page.add_script_tag(path=str(RRWEB))
    page.errors = errors
    yield page
    context.close()


def stored(env: dict[str, Any], make_job: Any, events: list[dict], report: str, privacy: Any = None) -> list[dict]:
    process_replay(make_job(payload(events, report, "project-1", privacy=privacy))[0])
    return list(iter_events(env["storage"], f"replays/project-1/{report}"))


def test_a_masked_form_replays_with_masks_in_the_dom(env, make_job, page) -> None:
    events = stored(env, make_job, form_recording(), "form", {"maskTextAttributes": ["data-private"]})
    out = page.evaluate(PLAY, [events, [10, 11, 13, 14, 16, 19, 22, 24, 26, 28, 41]])
    assert page.errors == []
    assert out["total"] == 990
    n = out["nodes"]
    assert n["10"]["value"] == "*" * len("Ada Lovelace!")  # the last input event, masked
    assert n["11"]["value"] == "*" * len("hunter22")
    assert n["13"]["value"] == "*" * len("no type is text")
    assert n["14"]["value"] == "*" * len("my new address")
    assert n["16"]["value"] != "b" and n["19"]["selected"] is False  # the chosen option is not shown
    assert n["22"]["text"] == "**** ****" and n["24"]["text"] == "******"
    assert n["26"]["text"] == "******* *****"
    assert n["28"]["text"] == "Welcome, Ada"  # text nobody marked private
    assert n["41"]["value"] == "*" * len("typed later")


def test_an_allowed_range_replays_its_value(env, make_job, page) -> None:
    events = [e for e in form_recording() if e["timestamp"] < 1_700_000_000_950]  # before it becomes a password
    events = stored(env, make_job, events, "range", {"allowInputTypes": ["range"]})
    out = page.evaluate(PLAY, [events, [10, 12]])
    assert page.errors == []
    assert out["nodes"]["12"]["value"] == "57" and out["nodes"]["10"]["value"] == "*************"


@pytest.mark.parametrize("name", ["rrweb-fixtures/input.json", "rrweb-fixtures/bad-textarea.json",
                                  "rrweb-fixtures/rrvideo-example.json", "rrweb-player-demoit-2018.json"])
def test_real_recordings_play_after_masking(env, make_job, page, corpus: Path, name: str) -> None:
    events = stored(env, make_job, json.loads((corpus / name).read_text()), Path(name).stem.replace(".", "-"))
    out = page.evaluate(PLAY, [events, [33] if name.endswith("input.json") else []])
    assert page.errors == []
    assert out["total"] == events[-1]["timestamp"] - events[0]["timestamp"]
    if name.endswith("input.json"):  # removed from the page at the end; the mirror still has it
        assert out["nodes"]["33"]["value"] == "*" * len("test input")
    if "textarea" in name:
        assert out["fields"] == [["TEXTAREA", "*" * len("this value is used for replay")]]
    if "demoit" in name:  # a real page's text, nothing marked private: replayed as recorded
        assert "click to count" in out["text"]
