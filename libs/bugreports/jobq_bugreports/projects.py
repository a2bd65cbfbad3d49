"""Per-project configuration of the intake API: API keys, integrations and notifications.

Ingest keys (they ship in browser SDKs and can only create reports) come from ``JOBQ_API_KEYS``,
read keys (for backends that show a report's processing) from ``JOBQ_API_READ_KEYS``, both as
``projectId:key`` pairs; what each project enqueues besides
screenshots and replays comes from the JSON or TOML file named by ``JOBQ_PROJECTS_FILE``. Both are
read once at start-up and checked there, so a typo stops the server instead of losing reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from jobq import ConfigError

from .ratelimit import RateLimit
from .store import check_id

API_KEYS = "JOBQ_API_KEYS"
READ_KEYS = "JOBQ_API_READ_KEYS"
PROJECTS_FILE = "JOBQ_PROJECTS_FILE"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,39}")
MIN_KEY_LENGTH = 16


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """Maps an ``X-API-Key`` value to its project.

    Keys are kept as SHA-256 digests and every one is compared with :func:`hmac.compare_digest`, so
    the time taken says nothing about how much of a key matched, nor which project's key it was.
    A project may have several keys (rotation).
    """

    def __init__(self, pairs: Mapping[str, str] | list[tuple[str, str]]) -> None:
        items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
        self._keys: list[tuple[bytes, str]] = [(_digest(key), project) for project, key in items]

    @classmethod
    def parse(cls, text: str | None, setting: str = API_KEYS) -> ApiKeys:
        """Parse ``proj-1:key1,proj-2:key2``; raise :class:`jobq.ConfigError` on a malformed entry.

        :param setting: the variable the text came from, for error messages.
        """
        pairs: list[tuple[str, str]] = []
        for n, entry in enumerate((text or "").split(","), 1):
            entry = entry.strip()
            if not entry:
                continue
            project, sep, key = entry.partition(":")
            if not sep:
                raise ConfigError(f"{setting} entry {n} must be projectId:key")
            try:
                check_id("projectId", project.strip())
            except ValueError:
                raise ConfigError(f"{setting} entry {n}: invalid project id") from None
            if len(key.strip()) < MIN_KEY_LENGTH:
                raise ConfigError(f"{setting} entry {n} (project {project.strip()}): key shorter than "
                                  f"{MIN_KEY_LENGTH} characters")
            pairs.append((project.strip(), key.strip()))
        return cls(pairs)

    def __len__(self) -> int:
        return len(self._keys)

    def overlaps(self, other: ApiKeys) -> bool:
        """True if a key is in both sets."""
        return bool({d for d, _ in self._keys} & {d for d, _ in other._keys})

    def project_for(self, key: str | None) -> str | None:
        """The project of ``key``, or ``None``; always compares against every configured key."""
        if not key:
            return None
        digest = _digest(key)
        found = None
        for known, project in self._keys:
            if hmac.compare_digest(known, digest):
                found = project
        return found


@attrs.frozen(kw_only=True)
class Integration:
    """An external tracker a project's reports are sent to (one ``integrations`` job each)."""

    name: str
    platform: str
    credentials: dict[str, Any] = attrs.field(factory=dict, repr=False)
    config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Notification:
    """A channel told about new reports (one ``notifications`` job each)."""

    name: str
    type: str
    recipients: list[str | dict[str, str]]  # addresses or URLs; a webhook's may be {url, secret}


# Input types a project may let through unmasked in session replays (the replay plugin checks them again).
REPLAY_INPUT_TYPES = frozenset({
    "color", "date", "datetime-local", "email", "month", "number", "range", "search", "tel", "text", "time",
    "url", "week", "textarea", "select", "checkbox", "radio", "hidden", "submit", "button", "reset", "image", "file",
})
_REPLAY_KEYS = {"allowInputTypes", "maskTextClasses", "maskTextAttributes"}


@attrs.frozen(kw_only=True)
class Project:
    """What a project's reports enqueue besides screenshots and replays, and how its replays are masked.

    :param replay_privacy: the replay job's ``privacy`` field (wire form); ``None`` masks every input.
    """

    integrations: tuple[Integration, ...] = ()
    notifications: tuple[Notification, ...] = ()
    replay_privacy: dict[str, Any] | None = None
    rate_limit: RateLimit | None = None


NO_PROJECT_CONFIG = Project()


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object")
    return value


def _only(entry: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}"
        )


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{where} must be 1-40 characters A-Z a-z 0-9 _ (it is part of job ids)")
    return value


def _unique(names: list[str], where: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: name(s) {', '.join(dupes)} used twice; give each entry its own 'name'")


def _rate_limit(value: Any, where: str) -> RateLimit | None:
    """``{requests, perSeconds}``: at most that many report requests in any rolling window."""
    if value is None:
        return None
    entry = _object(value, where)
    _only(entry, {"requests", "perSeconds"}, where)
    n, per = entry.get("requests"), entry.get("perSeconds")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
        raise ConfigError(f"{where}.requests must be a whole number from 1 to 1000000")
    if isinstance(per, bool) or not isinstance(per, int | float) or not 0.001 <= per <= 86400:
        raise ConfigError(f"{where}.perSeconds must be a number of seconds from 0.001 to 86400")
    return RateLimit(n, float(per))


def parse_projects(raw: Any, source: str = "projects") -> dict[str, Project]:
    """Check and convert ``{projectId: {integrations: [...], notifications: [...]}}``.

    Error messages name the offending entry but never print credential values.
    """
    out: dict[str, Project] = {}
    for project_id, body in _object(raw, source).items():
        where = f"{source}: project {project_id!r}"
        try:
            check_id("projectId", project_id)
        except ValueError:
            raise ConfigError(f"{where}: invalid project id") from None
        body = _object(body, where)
        _only(body, {"integrations", "notifications", "replay", "rateLimit"}, where)
        integrations = []
        for i, entry in enumerate(body.get("integrations") or []):
            w = f"{where} integrations[{i}]"
            entry = _object(entry, w)
            _only(entry, {"name", "platform", "credentials", "config"}, w)
            platform = _name(entry.get("platform"), f"{w}.platform")
            integrations.append(Integration(
                name=_name(entry.get("name", platform), f"{w}.name"),
                platform=platform,
                credentials=_object(entry.get("credentials", {}), f"{w}.credentials"),
                config=_object(entry.get("config", {}), f"{w}.config"),
            ))
        notifications = []
        for i, entry in enumerate(body.get("notifications") or []):
            w = f"{where} notifications[{i}]"
            entry = _object(entry, w)
            _only(entry, {"name", "type", "recipients"}, w)
            kind = _name(entry.get("type"), f"{w}.type")
            recipients = entry.get("recipients")
            if (not isinstance(recipients, list) or not recipients
                    or not all(_recipient(r) for r in recipients)):
                raise ConfigError(f"{w}.recipients must be a non-empty list of strings or {{url, secret}} objects")
            notifications.append(Notification(
                name=_name(entry.get("name", kind), f"{w}.name"), type=kind,
                recipients=[r if isinstance(r, str) else dict(r) for r in recipients],
            ))
        _unique([i.name for i in integrations], f"{where} integrations")
        _unique([n.name for n in notifications], f"{where} notifications")
        privacy = _replay_privacy(body["replay"], f"{where} replay") if "replay" in body else None
        out[project_id] = Project(integrations=tuple(integrations), notifications=tuple(notifications),
                                  replay_privacy=privacy,
                                  rate_limit=_rate_limit(body.get("rateLimit"), f"{where} rateLimit"))
    return out


def _recipient(value: object) -> bool:
    """A recipient as notification.md describes it: a string, or (webhooks) ``{url, secret?}`` of strings.

    The notification plugin checks the rest (schemes, secret format) when the API starts.
    """
    if isinstance(value, str):
        return bool(value)
    return (isinstance(value, dict) and isinstance(value.get("url"), str) and bool(value["url"])
            and set(value) <= {"url", "secret"} and all(isinstance(v, str) for v in value.values()))


def _replay_privacy(value: Any, where: str) -> dict[str, Any]:
    """``{allowInputTypes, maskTextClasses, maskTextAttributes}``: lists of names (see docs/plugins/replay.md)."""
    entry = _object(value, where)
    _only(entry, _REPLAY_KEYS, where)
    for key, names in entry.items():
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{where}.{key} must be a list of names")
    for name in entry.get("allowInputTypes", []):
        if name == "password":
            raise ConfigError(f"{where}.allowInputTypes: password inputs are always masked")
        if name not in REPLAY_INPUT_TYPES:
            raise ConfigError(f"{where}.allowInputTypes: {name[:40]!r} is not an input type; one of "
                              f"{', '.join(sorted(REPLAY_INPUT_TYPES))}")
    for name in entry.get("maskTextAttributes", []):
        if not name.startswith("data-"):
            raise ConfigError(f"{where}.maskTextAttributes: {name[:40]!r} is not a data-* attribute")
    return {key: list(entry[key]) for key in sorted(entry)}


def load_projects(path: str | Path | None) -> dict[str, Project]:
    """Read the projects file (``.toml``, else JSON); no file configured means no integrations."""
    if not path:
        return {}
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{PROJECTS_FILE}={p}: cannot read ({exc.strerror})") from None
    try:
        raw = tomllib.loads(text.decode()) if p.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        # The parser's message may quote a line of the file, which can hold a credential.
        pos = getattr(exc, "lineno", None)
        raise ConfigError(f"{PROJECTS_FILE}={p}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'}"
                          + (f" (line {pos})" if pos else "")) from None
    return parse_projects(raw, str(p))
