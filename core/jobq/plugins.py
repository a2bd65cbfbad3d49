"""Find installed plugins (entry-point group ``jobq.plugins``), record failures, call hooks.

Loading is an explicit call, never an import side effect. A plugin that fails to import, or
two plugins claiming one queue, is recorded by name with the reason: read-only commands show
it, ``jobq run`` refuses to start with it. Observer hooks that raise are logged and ignored.
"""

from __future__ import annotations

import logging
import os
import traceback as _traceback
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .spec import QueueSpec

log = logging.getLogger(__name__)
GROUP = "jobq.plugins"
DEFAULT_PLUGINS = ("jobq.metrics",)


@attrs.define
class PluginInfo:
    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    queues: list[str] = attrs.Factory(list)
    error: str | None = None
    traceback: str | None = attrs.field(default=None, repr=False)  # shown by ``jobq plugins --traceback``


class PluginHost:
    """The pluggy manager plus what was found, with one typed method per hook."""

    def __init__(self, *, group: str = GROUP, disabled: set[str] | None = None) -> None:
        self._direct: dict[str, tuple[tuple[Any, tuple[str, ...], str], ...] | None] = {}
        self.pm = _Manager(hookspecs.PROJECT, self)
        self.pm.add_hookspecs(hookspecs)
        self.group = group
        env_disabled = {x.strip() for x in os.environ.get("JOBQ_DISABLE_PLUGINS", "").split(",") if x.strip()}
        self.disabled = (disabled or set()) | env_disabled
        self.plugins: dict[str, PluginInfo] = {}
        self.queue_owner: dict[str, str] = {}
        self.specs: dict[str, QueueSpec] = {}
        self._traced = False

    def load(self, extra: list[Any] | None = None) -> PluginHost:
        import importlib

        for mod in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(mod), name=mod)
        for ep in entry_points(group=self.group):
            if ep.name in self.disabled:
                self.pm.set_blocked(ep.name)
                continue
            self._load_entry_point(ep)
        for obj in extra or ():
            name = getattr(obj, "__name__", None) or type(obj).__name__.lower()
            self.pm.register(obj, name=name)
            self.plugins[name] = PluginInfo(name=name, module=name)
            self._collect_queues(name, obj)
        self.pm.check_pending()
        if os.environ.get("JOBQ_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda msg: log.info("hook: %s", msg.rstrip()))
            self.pm.enable_tracing()
            self._traced = True
        return self

    def _direct_impls(self, hook: str) -> tuple[tuple[Any, tuple[str, ...], str], ...] | None:
        """The implementations of a per-job hook as ``(function, argnames, plugin)``, in pluggy's
        call order, or ``None`` when pluggy must dispatch (tracing on, or a wrapper registered).

        Per-job hooks run thousands of times a second: calling the few implementations straight
        skips pluggy's per-call argument mapping and result list (a third of a no-op job's cost).
        Computed on first use; registering or unregistering a plugin clears the cache.
        """
        try:
            return self._direct[hook]
        except KeyError:
            pass
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        direct = None
        if not self._traced and not any(i.hookwrapper or i.wrapper for i in impls):
            direct = tuple((i.function, tuple(i.argnames), i.plugin_name) for i in reversed(impls))
        self._direct[hook] = direct
        return direct

    def _load_entry_point(self, ep: EntryPoint) -> None:
        dist = ep.dist
        info = PluginInfo(name=ep.name, distribution=dist.name if dist else "", version=dist.version if dist else "",
                          module=ep.value)
        self.plugins[ep.name] = info
        try:
            plugin = ep.load()
        except ImportError as exc:
            info.error = f"missing dependency or broken import: {type(exc).__name__}: {exc}"
            info.traceback = _traceback.format_exc()
            log.error("plugin %s (%s) failed to import: %s", ep.name, info.distribution, exc)
            return
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
            info.traceback = _traceback.format_exc()
            log.error("plugin %s (%s) failed to load: %s", ep.name, info.distribution, info.error)
            return
        try:
            self.pm.register(plugin, name=ep.name)
        except ValueError as exc:
            info.error = f"could not register: {exc}"
            return
        self._collect_queues(ep.name, plugin)

    def _collect_queues(self, name: str, plugin: Any) -> None:
        info = self.plugins[name]
        impl = getattr(plugin, "jobq_queues", None)
        if impl is None:
            return
        try:
            specs = list(impl() or [])
        except Exception as exc:
            info.error = f"jobq_queues() raised {type(exc).__name__}: {exc}"
            info.traceback = _traceback.format_exc()
            return
        for spec in specs:
            if not isinstance(spec, QueueSpec):
                info.error = f"jobq_queues() returned {type(spec).__name__}, not QueueSpec"
                return
            owner = self.queue_owner.get(spec.name)
            if owner is not None:
                info.error = f"queue {spec.name!r} is already declared by plugin {owner!r}"
                self.plugins[owner].error = self.plugins[owner].error or (
                    f"queue {spec.name!r} is also declared by plugin {name!r}")
                continue
            self.queue_owner[spec.name] = name
            self.specs[spec.name] = spec
            info.queues.append(spec.name)

    @property
    def failures(self) -> dict[str, str]:
        return {n: p.error for n, p in self.plugins.items() if p.error}

    def check(self, plugins: list[str] | None = None) -> None:
        """Raise :class:`PluginError` naming every broken plugin among ``plugins`` (default: all)."""
        bad = {n: e for n, e in self.failures.items() if plugins is None or n in plugins}
        if bad:
            raise PluginError("; ".join(f"plugin {n!r}: {e}" for n, e in sorted(bad.items())))

    # -- typed hook calls --------------------------------------------------------------------
    def _observe(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("a %s hook raised; the job carries on", hook)

    def add_cli_commands(self, cli: Any) -> None:
        self._observe("jobq_cli_commands", cli=cli)

    def worker_started(self, *, worker_id: str, queues: list[str], specs: list[QueueSpec] | None = None) -> None:
        self._observe("jobq_worker_started", worker_id=worker_id, queues=queues, specs=specs or [])

    def worker_stopping(self, *, worker_id: str, queues: list[str]) -> None:
        self._observe("jobq_worker_stopping", worker_id=worker_id, queues=queues)

    def worker_stopped(self, *, worker_id: str, queues: list[str]) -> None:
        self._observe("jobq_worker_stopped", worker_id=worker_id, queues=queues)

    def _per_job(self, hook: str, kwargs: dict[str, Any]) -> None:
        impls = self._direct_impls(hook)
        if impls is None:
            self._observe(hook, **kwargs)
            return
        for fn, argnames, plugin in impls:
            try:
                fn(**{a: kwargs[a] for a in argnames})
            except Exception:
                log.exception("plugin %s: its %s hook raised; the job carries on", plugin, hook)

    def job_started(self, *, queue: str, job_id: str, attempt: int, wait: float) -> None:
        self._per_job("jobq_job_started", {"queue": queue, "job_id": job_id, "attempt": attempt, "wait": wait})

    def job_completed(self, *, queue: str, job_id: str, attempt: int, result: Any, duration: float) -> None:
        self._per_job("jobq_job_completed", {"queue": queue, "job_id": job_id, "attempt": attempt,
                                             "result": result, "duration": duration})

    def job_failed(self, *, queue: str, job_id: str, attempt: int, code: str, message: str,
                   will_retry: bool) -> None:
        self._per_job("jobq_job_failed", {"queue": queue, "job_id": job_id, "attempt": attempt, "code": code,
                                          "message": message, "will_retry": will_retry})


class _Manager(pluggy.PluginManager):
    """A pluggy manager that tells its host when the set of plugins changes."""

    def __init__(self, project: str, host: PluginHost) -> None:
        super().__init__(project)
        self._host = host

    def register(self, plugin: object, name: str | None = None) -> str | None:
        self._host._direct.clear()
        return super().register(plugin, name)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        self._host._direct.clear()
        return super().unregister(plugin, name)


def load_plugins(**kwargs: Any) -> PluginHost:
    return PluginHost(**kwargs).load()
