"""jobq plugin: the ``wordcounts`` queue."""

from jobq import QueueSpec, hookimpl

from .count import WordCountJob, count_words

__all__ = ["WordCountJob", "count_words", "jobq_queues"]


@hookimpl
def jobq_queues() -> list[QueueSpec]:
    return [QueueSpec(name="wordcounts", handler=count_words, payload=WordCountJob,
                      concurrency=4, retries=3, timeout=60, execution="thread",
                      description="Word counts of a stored text document")]
