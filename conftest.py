"""The project's own suite runs on the real Redis: jobq.testing falls back to fakeredis only when
JOBQ_TEST_REDIS_URL is unset, which a plugin author's machine may be, this suite never."""

import os

os.environ.setdefault("JOBQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
