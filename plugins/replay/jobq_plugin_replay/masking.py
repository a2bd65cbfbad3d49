"""Mask what users typed before a replay is stored, on the server, whatever the recording page did.

The model is rrweb's own recorder options, applied to the recorded events:

- ``maskInputOptions`` with every input masked: the ``value`` attribute of ``input``,
  ``textarea`` and ``select`` nodes in full snapshots and in added nodes, ``value`` attribute
  mutations, the text of input events (``IncrementalSource.Input``), the text content of a
  ``textarea``, and the ``selected`` mark of a masked ``select``'s options become ``*`` of the
  same length (or are dropped). A project may allow named input types (``range``,
  ``checkbox``...); ``password`` inputs (also rrweb's ``data-rr-is-password``) are always masked.
- ``maskTextClass``: text inside an element with the class ``rr-mask`` (or another configured
  class, or a configured ``data-*`` attribute) has every non-blank character replaced by ``*``,
  in snapshots and in text mutations, and inputs inside it are masked whatever their type.

Input events and mutations name their node by id only, so the masker keeps one byte of flags per
node id seen (a ``bytearray``, as long as the largest id: 1 MB per million ids, 8 MB at most).
rrweb numbers nodes from 1, so a real recording stays far below; ids past 8 million (a hostile
payload) are not tracked. A FullSnapshot starts a new page: the table is cleared. Unknown ids are
treated as inputs that are not allowed: their values and input events are masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import ERR_INVALID_REPLAY, ReplayRejected

FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT = 2, 3
MUTATION, INPUT = 0, 5  # IncrementalSource
ELEMENT, TEXT = 2, 3  # NodeType
DEFAULT_MASK_CLASS = "rr-mask"
PASSWORD = "password"
# rrweb's MaskInputOptions keys plus the input types it never records a typed value for.
INPUT_TYPES = frozenset({
    "color", "date", "datetime-local", "email", "month", "number", "range", "search", "tel", "text", "time",
    "url", "week", "textarea", "select", "checkbox", "radio", "hidden", "submit", "button", "reset", "image",
    "file", PASSWORD,
})
MAX_NAMES = 32
_CLASS_NAME = re.compile(r"-?[A-Za-z_][A-Za-z0-9_-]{0,63}")
_DATA_ATTRIBUTE = re.compile(r"data-[a-z0-9_.:-]{1,64}")
_NON_BLANK = re.compile(r"\S")
_INPUT_TAGS = frozenset({"input", "textarea", "select"})
_UNSEEN_STYLE_TAGS = frozenset({"style", "script"})
MAX_IDS = 1 << 23

# One byte of flags per node id.
SEEN, IS_INPUT, ALLOWED, MASK_TEXT, WAS_PASSWORD, IN_MASKED_SELECT, IN_MASKED_TEXTAREA, NO_TEXT_MASK = (
    1, 2, 4, 8, 16, 32, 64, 128)
_INHERITED = MASK_TEXT | IN_MASKED_SELECT | IN_MASKED_TEXTAREA | NO_TEXT_MASK


@attrs.frozen(kw_only=True)
class Privacy:
    """What a project lets through; the job payload's ``privacy`` field (camelCase on the wire).

    :param allow_input_types: input types recorded as typed (never ``password``).
    :param mask_text_classes: text under an element with one of these classes is masked, besides ``rr-mask``.
    :param mask_text_attributes: text under an element with one of these ``data-*`` attributes is masked.
    """

    allow_input_types: frozenset[str] = frozenset()
    mask_text_classes: tuple[str, ...] = ()
    mask_text_attributes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"allowInputTypes": sorted(self.allow_input_types),
                "maskTextClasses": [DEFAULT_MASK_CLASS, *self.mask_text_classes],
                "maskTextAttributes": list(self.mask_text_attributes)}


DEFAULT_PRIVACY = Privacy()
_FIELDS = {"allowInputTypes", "maskTextClasses", "maskTextAttributes"}


def parse_privacy(value: Any, where: str = "privacy") -> Privacy:
    """Check the wire form ``{"allowInputTypes": [...], "maskTextClasses": [...], "maskTextAttributes": [...]}``.

    :raises ReplayRejected: ``ERR_INVALID_REPLAY``, naming the field.
    """
    if value is None:
        return DEFAULT_PRIVACY
    if isinstance(value, Privacy):
        return value
    if type(value) is not dict:
        raise _bad(f"{where} must be an object")
    for key in value:
        if key not in _FIELDS:
            raise _bad(f"{where}: unknown key {str(key)[:40]!r}; allowed: {', '.join(sorted(_FIELDS))}")
    types = _names(value.get("allowInputTypes"), f"{where}.allowInputTypes", None)
    for n, name in enumerate(types):
        if name == PASSWORD:
            raise _bad(f"{where}.allowInputTypes[{n}]: password inputs are always masked")
        if name not in INPUT_TYPES:
            raise _bad(f"{where}.allowInputTypes[{n}] is not an input type; one of "
                       f"{', '.join(sorted(INPUT_TYPES - {PASSWORD}))}")
    return Privacy(allow_input_types=frozenset(types),
                   mask_text_classes=_names(value.get("maskTextClasses"), f"{where}.maskTextClasses", _CLASS_NAME),
                   mask_text_attributes=_names(value.get("maskTextAttributes"), f"{where}.maskTextAttributes",
                                               _DATA_ATTRIBUTE))


def _names(value: Any, where: str, pattern: re.Pattern[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is not list or len(value) > MAX_NAMES:
        raise _bad(f"{where} must be a list of at most {MAX_NAMES} names")
    for n, name in enumerate(value):
        if type(name) is not str or (pattern is not None and not pattern.fullmatch(name)):
            raise _bad(f"{where}[{n}] is not a valid name"
                       + (" (data-* attributes only, lower case)" if pattern is _DATA_ATTRIBUTE else ""))
    return tuple(dict.fromkeys(value))


def _bad(message: str) -> ReplayRejected:
    return ReplayRejected(ERR_INVALID_REPLAY, message)


def mask_text(text: str) -> str:
    """rrweb's default text mask: every non-blank character becomes ``*`` (layout kept)."""
    return _NON_BLANK.sub("*", text)


class Masker:
    """Masks events in place, in stream order; :attr:`counts` says how much was masked (never what)."""

    def __init__(self, privacy: Privacy = DEFAULT_PRIVACY) -> None:
        self.privacy = privacy
        self._allow = privacy.allow_input_types - {PASSWORD}
        self._classes = frozenset((DEFAULT_MASK_CLASS, *privacy.mask_text_classes))
        self._attributes = privacy.mask_text_attributes
        self._kinds = bytearray()
        self.input_values = self.input_events = self.text_nodes = self.selected_options = 0

    @property
    def counts(self) -> dict[str, Any]:
        return {"inputValues": self.input_values, "inputEvents": self.input_events,
                "textNodes": self.text_nodes, "selectedOptions": self.selected_options,
                **self.privacy.describe()}

    # -- the node table -------------------------------------------------------------------
    def _get(self, nid: Any) -> int:
        if type(nid) is int and 0 <= nid < len(self._kinds):
            return self._kinds[nid]
        return 0

    def _set(self, nid: Any, flags: int) -> None:
        if type(nid) is not int or not 0 <= nid < MAX_IDS:
            return
        kinds = self._kinds
        if nid >= len(kinds):
            kinds.extend(bytes(nid + 1 - len(kinds)))
        kinds[nid] = flags

    # -- events ---------------------------------------------------------------------------
    def mask(self, event: dict[str, Any]) -> None:
        data = event.get("data")
        if type(data) is not dict:
            return
        kind = event.get("type")
        if kind == FULL_SNAPSHOT:
            self._kinds = bytearray()
            self._walk(data.get("node"), 0)
        elif kind == INCREMENTAL_SNAPSHOT:
            source = data.get("source")
            if source == INPUT:
                self._input(data)
            elif source == MUTATION:
                self._mutation(data)

    def _input(self, data: dict[str, Any]) -> None:
        text = data.get("text")
        if type(text) is str and not self._get(data.get("id")) & ALLOWED:
            data["text"] = "*" * len(text)
            self.input_events += 1

    def _mutation(self, data: dict[str, Any]) -> None:
        adds = data.get("adds")
        if type(adds) is list:
            for add in adds:
                if type(add) is dict:
                    self._walk(add.get("node"), self._get(add.get("parentId")) & _INHERITED)
        texts = data.get("texts")
        if type(texts) is list:
            for change in texts:
                if type(change) is dict and type(change.get("value")) is str:
                    flags = self._get(change.get("id"))
                    if flags & (MASK_TEXT | IN_MASKED_TEXTAREA) and not flags & NO_TEXT_MASK:
                        change["value"] = mask_text(change["value"])
                        self.text_nodes += 1
        changes = data.get("attributes")
        if type(changes) is list:
            for change in changes:
                if type(change) is dict and type(change.get("attributes")) is dict:
                    self._attribute_change(change.get("id"), change["attributes"])

    def _attribute_change(self, nid: Any, values: dict[str, Any]) -> None:
        flags = self._get(nid)
        if self._marks(values):
            flags |= MASK_TEXT
        if flags & IS_INPUT and values.get("data-rr-is-password") is not None:
            flags = self._input_flags(flags, PASSWORD)
        elif flags & IS_INPUT and "type" in values:
            flags = self._input_flags(flags, _input_kind_from(values.get("type")))
        if type(values.get("value")) is str and not (flags & ALLOWED or (flags & SEEN and not flags & IS_INPUT)):
            values["value"] = "*" * len(values["value"])
            self.input_values += 1
        if flags & IN_MASKED_SELECT and values.get("selected") is not None:
            del values["selected"]
            self.selected_options += 1
        if flags & SEEN:
            self._set(nid, flags)

    def _input_flags(self, flags: int, kind: str) -> int:
        if kind == PASSWORD:
            flags |= WAS_PASSWORD
        if kind in self._allow and not flags & (WAS_PASSWORD | MASK_TEXT):
            return flags | ALLOWED
        return flags & ~ALLOWED

    def _marks(self, attributes: Mapping[str, Any]) -> bool:
        if not attributes:
            return False
        classes = attributes.get("class")
        if type(classes) is str and not self._classes.isdisjoint(classes.split()):
            return True
        return any(attributes.get(name) is not None for name in self._attributes)

    def _walk(self, root: Any, inherited: int) -> None:
        stack = [(root, inherited)]
        pop, push, record, element = stack.pop, stack.extend, self._set, self._element
        while stack:
            node, flags = pop()
            if type(node) is not dict:
                continue
            kind = node.get("type")
            if kind == TEXT:
                if flags & (MASK_TEXT | IN_MASKED_TEXTAREA) and not flags & NO_TEXT_MASK:
                    content = node.get("textContent")
                    if type(content) is str and content:
                        node["textContent"] = mask_text(content)
                        self.text_nodes += 1
                record(node.get("id"), SEEN | flags)
                continue
            own = element(node, flags) if kind == ELEMENT else flags | SEEN
            record(node.get("id"), own)
            children = node.get("childNodes")
            if children and type(children) is list:
                down = own & _INHERITED
                push([(child, down) for child in reversed(children)])

    def _element(self, node: dict[str, Any], inherited: int) -> int:
        tag = node.get("tagName")
        tag = tag.lower() if type(tag) is str else ""
        attributes = node.get("attributes")
        if type(attributes) is not dict:
            attributes = {}
        flags = SEEN | (inherited & (MASK_TEXT | IN_MASKED_SELECT))
        if self._marks(attributes):
            flags |= MASK_TEXT
        if tag in _UNSEEN_STYLE_TAGS:
            flags |= NO_TEXT_MASK
        if tag in _INPUT_TAGS:
            flags = self._input_flags(flags | IS_INPUT, _input_kind(tag, attributes))
            if not flags & ALLOWED:
                value = attributes.get("value")
                if type(value) is str and value:
                    attributes["value"] = "*" * len(value)
                    self.input_values += 1
                if tag == "select":
                    flags |= IN_MASKED_SELECT
                elif tag == "textarea":
                    flags |= IN_MASKED_TEXTAREA
        elif tag == "option" and inherited & IN_MASKED_SELECT and attributes.get("selected") is not None:
            del attributes["selected"]
            self.selected_options += 1
        return flags


def _input_kind(tag: str, attributes: Mapping[str, Any]) -> str:
    if tag != "input":
        return tag
    if attributes.get("data-rr-is-password") is not None:
        return PASSWORD
    return _input_kind_from(attributes.get("type"))


def _input_kind_from(value: Any) -> str:
    return value.strip().lower() if type(value) is str and value.strip() else "text"
