"""jobq plugin: the ``screenshots`` queue (browser screenshot → optimized image + thumbnail)."""

from jobq import QueueSpec, hookimpl

from .capture import ScreenshotJob, process_screenshot

__all__ = ["ScreenshotJob", "jobq_queues", "process_screenshot"]


@hookimpl
def jobq_queues() -> list[QueueSpec]:
    # execution="process": Pillow decode/resize/encode holds the GIL for tens of milliseconds at a
    # time; in a child process it cannot starve the worker's heartbeats, and a timeout kills it.
    return [QueueSpec(name="screenshots", handler=process_screenshot, payload=ScreenshotJob,
                      concurrency=5, retries=3, timeout=120, execution="process",
                      # a handler process keeps its image memory from job to job (imaging.reuse_image_memory);
                      # a fresh one costs ~1 s of imports, so it is replaced every 1,000 captures, not 200
                      process_max_tasks=1000,
                      description="Browser screenshots: optimized image (max 2048 px) and 320x240 thumbnail",
                      reason_codes=("ERR_DECOMPRESSION_BOMB", "ERR_IMAGE_DIMENSIONS", "ERR_INVALID_DATA_URL",
                                    "ERR_INVALID_IMAGE", "ERR_MIME_MISMATCH", "ERR_PAYLOAD_TOO_LARGE",
                                    "ERR_STORAGE", "ERR_UNSAFE_ID", "ERR_UNSUPPORTED_MIME"))]
