"""Per-project request limits of the intake API, shared by every API process through Redis
(:mod:`jobq.limits`: a rolling window, never twice the limit around a boundary)."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import redis
from jobq.limits import Admission, admit

log = logging.getLogger(__name__)


@attrs.frozen
class RateLimit:
    """``rateLimit: {requests, perSeconds}`` of one project."""

    requests: int
    per_seconds: float


class RequestLimiter:
    """Admits or refuses one request of a project against its :class:`RateLimit`.

    :param client: a blocking redis client (the intake's manager's).
    :param prefix: jobq's key prefix; keys are ``<prefix>:{api:<project>}:requests``.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def check(self, project_id: str, limit: RateLimit) -> Admission | None:
        """The verdict, or ``None`` when Redis cannot answer (then the request goes on: creating the
        report needs Redis too and answers 503 on its own)."""
        key = f"{self.prefix}:{{api:{project_id}}}:requests"
        try:
            return admit(self.client, key, limit.requests, limit.per_seconds)
        except redis.RedisError as exc:
            log.warning("request limit of project %s not checked: %s", project_id, type(exc).__name__)
            return None
