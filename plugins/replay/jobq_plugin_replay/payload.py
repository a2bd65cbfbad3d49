"""The ``replays`` job payload, validated at enqueue on the list the producer already holds."""

from __future__ import annotations

from typing import Any

import attrs
from jobq import RawJSON
from jobq.serialization import camel
from jobq.storage import UnsafeKey, safe_part
from jobq_bugreports.store import check_id

from . import settings as replay_settings
from .events import check_events
from .masking import parse_privacy


def _safe_id(_inst: object, attribute: attrs.Attribute, value: object) -> None:
    """An id is a storage path segment and a bug-report id: the stricter rule of the two (the store's)."""
    if not isinstance(value, str):
        raise TypeError(f"'{attribute.name}' must be a string")
    try:
        safe_part(value)
    except UnsafeKey:
        raise ValueError(f"'{attribute.name}' is not a safe id") from None
    check_id(camel(attribute.name), value)


def _events(_inst: object, _attribute: attrs.Attribute, value: object) -> None:
    check_events(value, replay_settings.current().max_events)


def _privacy(_inst: object, _attribute: attrs.Attribute, value: object) -> None:
    parse_privacy(value)


def _events_repr(value: Any) -> str:
    return repr(value) if isinstance(value, RawJSON) else f"<{len(value)} events>"


@attrs.frozen(kw_only=True)
class ReplayJob:
    """``{bugReportId, projectId, privacy, replayData}`` on the wire.

    :param bug_report_id: the bug report the replay belongs to; a storage path segment.
    :param project_id: the report's project; a storage path segment.
    :param privacy: what the project lets through unmasked (:func:`~.masking.parse_privacy`'s
        wire form); ``None`` masks every input. The intake fills it from the projects file. Send it
        before ``replayData``: a streamed payload is masked as it is read.
    :param replay_data: the rrweb events (objects with an integer ``type`` and a numeric
        ``timestamp`` in ms), in any order. Typed ``Any`` on purpose: the converter then hands
        the list through untouched (a ``list[...]`` type would copy it, and would turn a string
        into a list of characters), and the validator checks it in one cheap pass. A
        :class:`~jobq.RawJSON` array is accepted too, checked one event at a time.
    """

    bug_report_id: str = attrs.field(validator=_safe_id)
    project_id: str = attrs.field(validator=_safe_id)
    privacy: Any = attrs.field(default=None, validator=_privacy)
    replay_data: Any = attrs.field(validator=_events, repr=_events_repr)
