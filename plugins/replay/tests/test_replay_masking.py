"""Typed text is masked before anything is stored: inputs by default, text by class or data-* attribute."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from jobq import InvalidPayload, JobFailed
from jobq.serialization import structure_payload
from jobq_plugin_replay import ReplayJob, reader
from jobq_plugin_replay.masking import Masker, mask_text, parse_privacy
from jobq_plugin_replay.playback import iter_events, load_manifest
from jobq_plugin_replay.process import process_replay
from jobq_plugin_replay.samples import element, form_recording, payload

FOLDER = "replays/project-1/report-1"


def masked(events: list[dict], privacy: Any = None) -> tuple[list[dict], Masker]:
    events = copy.deepcopy(events)
    masker = Masker(parse_privacy(privacy))
    for e in events:
        masker.mask(e)
    return events, masker


def nodes(events: list[dict]) -> dict[int, dict]:
    """Every serialized node of the events by id (the last one seen wins)."""
    found: dict[int, dict] = {}
    stack: list[Any] = [e.get("data") for e in events]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "id" in item and "type" in item and ("tagName" in item or "textContent" in item):
                found[item["id"]] = item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def test_every_input_is_masked_by_default_with_the_same_length() -> None:
    events, masker = masked(form_recording())
    n = nodes(events)
    assert n[10]["attributes"]["value"] == "*" * len("Ada Lovelace")
    assert n[11]["attributes"]["value"] == "*******"
    assert n[12]["attributes"]["value"] == "**"  # range too: nothing is allowed by default
    assert n[13]["attributes"]["value"] == "*" * len("no type is text")
    assert n[14]["attributes"]["value"] == "*" * len("my address")
    assert n[15]["textContent"] == "** *******"  # a textarea's text child is its value
    assert n[16]["attributes"]["value"] == "*"
    assert "selected" not in n[19]["attributes"] and "selected" not in n[42]["attributes"]
    assert n[29]["attributes"]["value"] == "********"
    assert n[32]["attributes"]["value"] == "**"
    assert n[41]["attributes"]["value"] == "***"
    typed = [e["data"]["text"] for e in events if e["type"] == 3 and e["data"]["source"] == 5]
    assert typed == ["*************", "********", "**", "*", "**", "***********", "************", "**"]
    assert events[7]["data"]["attributes"][0]["attributes"]["value"] == "*" * len("my new address")
    assert events[7]["data"]["attributes"][1]["attributes"]["value"] == "1"  # a <p value>: not an input
    assert masker.counts["inputEvents"] == 8 and masker.counts["selectedOptions"] == 2


def test_text_under_rr_mask_or_a_configured_attribute() -> None:
    events, masker = masked(form_recording(), {"maskTextAttributes": ["data-private"]})
    n = nodes(events)
    assert n[22]["textContent"] == "**** **** ****" and n[24]["textContent"] == "******"
    assert n[26]["textContent"] == "******* *****"
    assert n[28]["textContent"] == "Welcome back"  # unmarked text stays
    assert n[31]["textContent"] == "p { color: red }"  # style text is not content
    assert n[40]["textContent"] == "***** ******"  # added under a masked element later
    texts = events[7]["data"]["texts"]
    assert texts == [{"id": 22, "value": "**** ****"}, {"id": 28, "value": "Welcome, Ada"}]
    assert masker.counts["textNodes"] == 6  # 15 (the textarea's), 22, 24, 26, 40, and the mutation of 22
    assert mask_text(" a b\n") == " * *\n"


def test_allowed_input_types_and_passwords_always_masked() -> None:
    events, masker = masked(form_recording(), {"allowInputTypes": ["range", "checkbox", "text"]})
    n = nodes(events)
    assert n[12]["attributes"]["value"] == "42" and n[32]["attributes"]["value"] == "on"
    assert n[10]["attributes"]["value"] == "Ada Lovelace" and n[13]["attributes"]["value"] == "no type is text"
    assert n[11]["attributes"]["value"] == "*******"  # type=password
    assert n[29]["attributes"]["value"] == "********"  # data-rr-is-password (a "show password" toggle)
    assert n[14]["attributes"]["value"] == "**********"  # textarea not allowed
    typed = [e["data"]["text"] for e in events if e["type"] == 3 and e["data"]["source"] == 5]
    # range 57 kept; after the range became a password, 58 is masked; unknown ids are masked
    assert typed == ["Ada Lovelace!", "********", "57", "*", "on", "typed later", "************", "**"]
    assert masker.counts["allowInputTypes"] == ["checkbox", "range", "text"]


@pytest.mark.parametrize(("privacy", "field"), [
    ({"allowInputTypes": ["password"]}, "privacy.allowInputTypes[0]: password inputs are always masked"),
    ({"allowInputTypes": ["range", "creditcard"]}, "privacy.allowInputTypes[1] is not an input type"),
    ({"allowInputTypes": "range"}, "privacy.allowInputTypes must be a list"),
    ({"maskTextAttributes": ["class"]}, "privacy.maskTextAttributes[0] is not a valid name"),
    ({"maskTextClasses": ["a b"]}, "privacy.maskTextClasses[0] is not a valid name"),
    ({"maskInputs": False}, "privacy: unknown key 'maskInputs'"),
    ([], "privacy must be an object"),
])
def test_bad_privacy_is_refused_at_enqueue_and_by_the_handler(env, make_job, privacy: Any, field: str) -> None:
    events = form_recording()
    with pytest.raises(InvalidPayload, match=field.replace("[", r"\[").replace("]", r"\]")):
        structure_payload({"bugReportId": "report-1", "projectId": "project-1", "privacy": privacy,
                           "replayData": events}, ReplayJob)
    with pytest.raises(JobFailed, match=field.replace("[", r"\[").replace("]", r"\]")) as info:
        process_replay(make_job(payload(events, privacy=privacy))[0])
    assert info.value.code == "ERR_INVALID_REPLAY"
    assert not (env["storage_dir"] / FOLDER).exists()


@pytest.mark.parametrize("parser", ["stream", "whole"])
def test_the_handler_masks_before_storing_and_counts_in_the_manifest(env, make_job, monkeypatch,
                                                                     parser: str) -> None:
    monkeypatch.setattr(reader, "WHOLE_PARSE_BYTES", 0 if parser == "stream" else 1024 * 1024)
    events = form_recording()
    privacy = {"allowInputTypes": ["range"], "maskTextAttributes": ["data-private"]}
    process_replay(make_job(payload(events, privacy=privacy))[0])
    stored = list(iter_events(env["storage"], FOLDER))
    assert stored == masked(events, privacy)[0]
    raw = b"".join(p.read_bytes() for p in (env["storage_dir"] / FOLDER).iterdir())
    everything = raw + b"".join(gzip.decompress(p.read_bytes())
                                for p in (env["storage_dir"] / FOLDER).glob("*.gz"))
    for secret in (b"Ada Lovelace", b"hunter2", b"my address", b"4242", b"private words", b"typed later"):
        assert secret not in everything, secret
    counts = load_manifest(env["storage"], FOLDER)["masking"]
    # values: 7 in the snapshot (not the range), the textarea's mutation, the added input; events: all
    # but the first of the range (the second follows its change to a password)
    assert counts == {"inputValues": 9, "inputEvents": 7, "textNodes": 6, "selectedOptions": 2,
                      "allowInputTypes": ["range"], "maskTextClasses": ["rr-mask"],
                      "maskTextAttributes": ["data-private"]}


@pytest.mark.parametrize(("key", "message"), [("privacy", "privacy must come before replayData"),
                                              ("extra", "unknown key 'extra' in the payload")])
def test_keys_after_the_events_are_checked_when_streaming(env, make_job, monkeypatch, key: str,
                                                          message: str) -> None:
    """The events are masked as they stream: a ``privacy`` that follows them came too late."""
    monkeypatch.setattr(reader, "WHOLE_PARSE_BYTES", 0)
    body = json.dumps({"bugReportId": "report-1", "projectId": "project-1", "replayData": form_recording(),
                       key: {"allowInputTypes": ["range"]}}).encode()
    with pytest.raises(JobFailed, match=message):
        process_replay(make_job(body)[0])
    assert not (env["storage_dir"] / FOLDER).exists()


def test_real_recordings_keep_no_typed_value(env, make_job, corpus: Path) -> None:
    """rrweb's own fixtures: a select chosen twice, text typed into an input, a textarea's value."""
    seen = {}
    for name in ("input.json", "rrvideo-example.json", "bad-textarea.json"):
        events = json.loads((corpus / "rrweb-fixtures" / name).read_text())
        report = name.split(".")[0]
        process_replay(make_job(payload(events, report, "corpus"))[0])
        folder = f"replays/corpus/{report}"
        stored = list(iter_events(env["storage"], folder))
        assert len(stored) == len(events)
        typed = [(a["data"]["text"], b["data"]["text"]) for a, b in zip(events, stored, strict=True)
                 if a["type"] == 3 and a["data"]["source"] == 5]
        assert all(after == "*" * len(before) for before, after in typed), name
        seen[name] = load_manifest(env["storage"], folder)["masking"]
    assert seen["input.json"]["inputEvents"] == 3 and seen["input.json"]["selectedOptions"] == 1
    assert seen["bad-textarea.json"]["inputValues"] == 1 and seen["bad-textarea.json"]["textNodes"] == 1
    textarea = nodes(list(iter_events(env["storage"], "replays/corpus/bad-textarea")))[6]
    assert textarea["attributes"]["value"] == "*" * len("this value is used for replay")


def test_an_allowed_input_turned_into_a_password_stays_masked() -> None:
    masker = Masker(parse_privacy({"allowInputTypes": ["text"]}))
    snapshot = {"node": element(1, "body", {}, [element(2, "input", {"type": "text", "value": "ok"})])}
    masker.mask({"type": 2, "data": snapshot, "timestamp": 1})
    assert snapshot["node"]["childNodes"][0]["attributes"]["value"] == "ok"
    changes = [{"id": 2, "attributes": {"data-rr-is-password": "true"}}]
    masker.mask({"type": 3, "data": {"source": 0, "attributes": changes}, "timestamp": 2})
    for kind in ("password", "text"):  # shown again as text: still the password field
        masker.mask({"type": 3, "data": {"source": 0, "attributes": [{"id": 2, "attributes": {"type": kind}}]},
                     "timestamp": 3})
        typed = {"source": 5, "text": "s3cret", "id": 2}
        masker.mask({"type": 3, "data": typed, "timestamp": 4})
        assert typed["text"] == "******"


def test_node_table_stays_small_for_hostile_ids() -> None:
    masker = Masker()
    huge = {"type": 2, "data": {"node": element(10**15, "input", {"value": "x"}), "initialOffset": {}},
            "timestamp": 1}
    masker.mask(huge)
    masker.mask({"type": 3, "data": {"source": 5, "text": "y", "id": 10**15}, "timestamp": 2})
    masker.mask({"type": 3, "data": {"source": 5, "text": "z", "id": -1}, "timestamp": 3})
    masker.mask({"type": 3, "data": {"source": 0, "adds": [{"parentId": "x", "node": [1]}], "texts": [{"id": 1}],
                                     "attributes": [{"id": True, "attributes": {"value": 3}}]}, "timestamp": 4})
    assert len(masker._kinds) == 0 and masker.counts["inputEvents"] == 2
