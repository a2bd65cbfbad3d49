"""Find platforms on the ``jobq.integrations`` entry-point group.

Every entry point is loaded once per process. One that fails to import, is not a
:class:`Platform`, or shares its name with another distribution's is kept with the reason, so
a job for it fails saying why (and ``jobq integrations`` shows it) while the others work.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

import attrs

from .errors import PlatformBroken, UnknownPlatform
from .platform import Platform

GROUP = "jobq.integrations"
DISABLED_ENV = "JOBQ_INTEGRATIONS_DISABLED"

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Entry:
    """One registered platform: loaded, or the reason it is not usable."""

    name: str
    value: str
    distribution: str
    version: str
    platform: Platform | None = None
    error: str | None = None


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def load_entry(ep: EntryPoint) -> Entry:
    dist, version = _dist(ep)
    base = dict(name=ep.name, value=ep.value, distribution=dist, version=version)
    try:
        obj = ep.load()
    except Exception as exc:  # an import failure of any kind is recorded, not raised
        log.warning("integration platform %r from %s failed to load: %s: %s", ep.name, dist,
                    type(exc).__name__, exc)
        return Entry(**base, error=f"failed to import {ep.value}: {type(exc).__name__}: {exc}")
    platform = obj() if isinstance(obj, type) and issubclass(obj, Platform) else obj
    if not isinstance(platform, Platform):
        return Entry(**base, error=f"{ep.value} is not a jobq_plugin_integration.Platform")
    problems = []
    if platform.name != ep.name:
        problems.append(f"it declares name {platform.name!r} but is registered as {ep.name!r}")
    for attr in ("credentials_type", "config_type"):
        kind = getattr(platform, attr, None)
        if not (isinstance(kind, type) and attrs.has(kind)):
            problems.append(f"{attr} is not an attrs class")
    if problems:
        return Entry(**base, error=f"{ep.value}: " + "; ".join(problems))
    return Entry(**base, platform=platform)


class Registry:
    """The platforms installed in this environment, by name."""

    def __init__(self, entries: Iterable[Entry], disabled: Iterable[str] = ()) -> None:
        self.disabled = frozenset(disabled)
        by_name: dict[str, Entry] = {}
        for entry in entries:
            if entry.name in self.disabled:
                continue
            other = by_name.get(entry.name)
            if other is not None and other.distribution != entry.distribution:
                # Two distributions claim one name: refuse both rather than pick one silently.
                reason = (f"platform {entry.name!r} is registered by both {other.distribution} and "
                          f"{entry.distribution}; uninstall one")
                by_name[entry.name] = attrs.evolve(other, platform=None, error=reason)
                continue
            by_name[entry.name] = entry
        self._entries = dict(sorted(by_name.items()))

    @classmethod
    def discover(cls, disabled: Iterable[str] = ()) -> Registry:
        eps = entry_points(group=GROUP)
        return cls((load_entry(ep) for ep in eps), disabled)

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def names(self) -> list[str]:
        """Names of the platforms that loaded."""
        return [n for n, e in self._entries.items() if e.platform is not None]

    def get(self, name: str) -> Platform:
        entry = self._entries.get(name)
        if entry is None:
            installed = ", ".join(self.names()) or "none"
            hint = f" (disabled by {DISABLED_ENV})" if name in self.disabled else ""
            raise UnknownPlatform(f"unknown integration platform {name!r}{hint}; installed: {installed} "
                                  f"(a platform is a distribution registering the {GROUP!r} entry-point group)")
        if entry.platform is None:
            raise PlatformBroken(f"integration platform {name!r} from {entry.distribution} {entry.version} "
                                 f"is installed but unusable: {entry.error}")
        return entry.platform


_lock = threading.Lock()
_cache: dict[str, Registry] = {}


def default_registry() -> Registry:
    """The process-wide registry (built once per value of ``JOBQ_INTEGRATIONS_DISABLED``)."""
    raw = os.environ.get(DISABLED_ENV, "")
    with _lock:
        reg = _cache.get(raw)
        if reg is None:
            disabled = [p.strip() for p in raw.split(",") if p.strip()]
            reg = _cache[raw] = Registry.discover(disabled)
        return reg
