"""jobq: a Redis job queue with installable job-type plugins."""

from .config import Settings
from .context import JobContext
from .dependencies import FlowJob
from .errors import (
    ConfigError,
    EnqueueError,
    InvalidOptions,
    InvalidPayload,
    JobFailed,
    JobNotFound,
    JobqError,
    PayloadTooLarge,
    PluginError,
    QueueFull,
    QueueUnavailable,
    RateLimited,
    Retry,
    UnknownQueue,
    UnrecoverableError,
)
from .jobs import Failure, Job, JobOptions
from .queue import AsyncQueueManager, QueueManager
from .rawjson import RawJSON
from .results import JobNotCompleted, WaitTimeout
from .schedules import Schedule, ScheduleInfo, ScheduleNotFound
from .spec import QueueSpec

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # pluggy is loaded only where plugins are: a bare worker or producer never imports it
    if name == "hookimpl":
        from .hookspecs import hookimpl

        return hookimpl
    raise AttributeError(f"module 'jobq' has no attribute {name!r}")

__all__ = [
    "AsyncQueueManager",
    "Failure",
    "FlowJob",
    "Job",
    "JobOptions",
    "QueueManager",
    "ConfigError",
    "EnqueueError",
    "InvalidOptions",
    "InvalidPayload",
    "JobContext",
    "JobFailed",
    "JobNotCompleted",
    "JobNotFound",
    "JobqError",
    "PayloadTooLarge",
    "PluginError",
    "QueueFull",
    "QueueSpec",
    "RateLimited",
    "RawJSON",
    "QueueUnavailable",
    "Retry",
    "Schedule",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Settings",
    "UnknownQueue",
    "UnrecoverableError",
    "WaitTimeout",
    "hookimpl",
]
