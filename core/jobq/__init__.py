"""jobq: a Redis job queue with installable job-type plugins."""

from .config import Settings
from .context import JobContext
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
    Retry,
    UnknownQueue,
    UnrecoverableError,
)
from .hookspecs import hookimpl
from .jobs import Failure, Job, JobOptions
from .queue import AsyncQueueManager, QueueManager
from .spec import QueueSpec

__version__ = "0.1.0"

__all__ = [
    "AsyncQueueManager",
    "Failure",
    "Job",
    "JobOptions",
    "QueueManager",
    "ConfigError",
    "EnqueueError",
    "InvalidOptions",
    "InvalidPayload",
    "JobContext",
    "JobFailed",
    "JobNotFound",
    "JobqError",
    "PayloadTooLarge",
    "PluginError",
    "QueueSpec",
    "Retry",
    "Settings",
    "UnknownQueue",
    "UnrecoverableError",
    "hookimpl",
]
