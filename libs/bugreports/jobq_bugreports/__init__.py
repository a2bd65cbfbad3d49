"""Bug reports for jobq: the store the plugins record into, and the intake API that enqueues their jobs."""

__version__ = "0.1.0"
