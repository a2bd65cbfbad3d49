"""Linear, GraphQL: ``issueCreate`` / ``issueUpdate``, personal API key auth.

``IssueCreateInput.id`` lets the client choose the issue's UUID, so the id is derived from the
report and the team: a retry after a lost response sends the same id, Linear refuses the
duplicate, and the issue is read back with ``issue(id:)`` and adopted. Creation is therefore
idempotent without any search.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import attrs
import httpx
from jobq import RateLimited

from ..errors import AuthFailed, PlatformRejected, PlatformUnavailable, ProtocolError, TargetNotFound
from ..fields import api_url, pattern, secret
from ..platform import DEFAULT_RATE_LIMIT_DELAY, MAX_RATE_LIMIT_DELAY, ExternalIssue, Platform, Sync, retry_after
from ..render import markdown, one_line

PRIORITY = {"critical": 1, "high": 2, "medium": 3, "low": 4}
TITLE_MAX = 512
DESCRIPTION_MAX = 100_000

ISSUE_FIELDS = "id identifier url team { id }"
CREATE = (f"mutation JobqIssueCreate($input: IssueCreateInput!) {{ issueCreate(input: $input) "
          f"{{ success issue {{ {ISSUE_FIELDS} }} }} }}")
UPDATE = (f"mutation JobqIssueUpdate($id: String!, $input: IssueUpdateInput!) {{ issueUpdate(id: $id, "
          f"input: $input) {{ success issue {{ {ISSUE_FIELDS} }} }} }}")
READ = f"query JobqIssue($id: String!) {{ issue(id: $id) {{ {ISSUE_FIELDS} }} }}"

AUTH_TYPES = {"authentication error", "forbidden"}
AUTH_CODES = {"AUTHENTICATION_ERROR", "FORBIDDEN", "UNAUTHENTICATED"}
RETRYABLE_TYPES = {"internal error", "lock timeout", "network error", "bootstrap error"}


@attrs.frozen(kw_only=True)
class LinearCredentials:
    api_key: str = secret()


@attrs.frozen(kw_only=True)
class LinearConfig:
    team_id: str = attrs.field(validator=pattern(r"[A-Za-z0-9_-]{1,64}", "a Linear team id"))
    api_url: str = attrs.field(default="https://api.linear.app/graphql", validator=api_url())


def issue_uuid(marker: str, target: str) -> str:
    """A UUID in version-4 form (as ``IssueCreateInput.id`` asks), fixed for one report and team."""
    digest = hashlib.sha256(f"{marker}|{target}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class LinearError(Exception):
    """The first GraphQL error of an answer, with the fields classification needs."""

    def __init__(self, status: int, message: str, type_: str, code: str, headers: httpx.Headers,
                 raw: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.raw = raw
        self.type = type_
        self.code = code
        self.headers = headers


def _not_found(err: LinearError) -> bool:
    """Linear words a missing entity "Entity not found: Team" / "Could not find referenced Team."."""
    text = f"{err.raw} {err.message}".lower()
    return "not found" in text or "could not find" in text or err.code.upper() == "NOT_FOUND"


class LinearPlatform(Platform):
    name = "linear"
    title = "Linear"
    credentials_type = LinearCredentials
    config_type = LinearConfig

    def target(self, config: LinearConfig) -> str:
        return f"{config.api_url.rstrip('/')}#team={config.team_id}"

    def api_urls(self, config: LinearConfig) -> list[str]:
        return [config.api_url]

    def _headers(self, credentials: LinearCredentials) -> dict[str, str]:
        # A personal API key goes bare in Authorization (an OAuth token would be given as "Bearer …").
        return {"Authorization": credentials.api_key}

    async def _graphql(self, sync: Sync, query: str, variables: dict[str, Any], action: str) -> dict[str, Any]:
        config: LinearConfig = sync.config
        response = await sync.http.send("POST", config.api_url, action=action,
                                        json={"query": query, "variables": variables},
                                        headers=self._headers(sync.credentials))
        try:
            body = response.json()
        except ValueError:
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors or response.status_code != 200:
            first = errors[0] if errors and isinstance(errors[0], dict) else {}
            ext = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
            message = str(ext.get("userPresentableMessage") or first.get("message") or response.text[:200])
            raise LinearError(response.status_code, sync.http.redact(message, 300), str(ext.get("type") or ""),
                              str(ext.get("code") or ""), response.headers,
                              raw=sync.http.redact(first.get("message") or "", 300))
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise ProtocolError(f"linear: {action} answered without data")
        return data

    def _raise(self, err: LinearError, action: str, not_found: str) -> None:
        """Map a GraphQL error to a reason code (Linear signals most of them in ``extensions``)."""
        kind, code = err.type.lower(), err.code.upper()
        if kind == "ratelimited" or code == "RATELIMITED" or err.status == 429:
            delay = retry_after(err.headers)
            reset = err.headers.get("x-ratelimit-requests-reset")
            if delay is None and reset:
                try:  # a Unix time in milliseconds
                    delay = max(1.0, float(reset) / 1000 - time.time())
                except ValueError:
                    delay = None
            raise RateLimited(min(DEFAULT_RATE_LIMIT_DELAY if delay is None else delay, MAX_RATE_LIMIT_DELAY),
                              reason=f"linear: rate limited while trying to {action}")
        if kind in AUTH_TYPES or code in AUTH_CODES or err.status in (401, 403):
            raise AuthFailed(f"linear: the API key was refused while trying to {action} ({err.message})")
        if _not_found(err):
            raise TargetNotFound(f"linear: {not_found} ({err.message})")
        if kind in RETRYABLE_TYPES or err.status >= 500:
            raise PlatformUnavailable(f"linear: {action} failed: {err.message}")
        raise PlatformRejected(f"linear: {action} was refused: {err.message}")

    def _issue(self, issue: Any) -> ExternalIssue:
        if not isinstance(issue, dict) or not issue.get("id") or not issue.get("identifier"):
            raise ProtocolError("linear: the answer holds no issue")
        return ExternalIssue(external_id=str(issue["identifier"]), external_url=str(issue.get("url") or ""),
                             ref={"issueId": str(issue["id"])})

    async def _read(self, sync: Sync, issue_id: str) -> ExternalIssue | None:
        try:
            data = await self._graphql(sync, READ, {"id": issue_id}, "read back the Linear issue")
        except LinearError as err:
            if _not_found(err):
                return None
            self._raise(err, "read back the Linear issue", "issue not found")
            raise  # unreachable: _raise always raises
        issue = data.get("issue")
        team = (issue or {}).get("team") or {}
        if not issue or team.get("id") != sync.config.team_id:
            return None
        return self._issue(issue)

    def _content(self, sync: Sync) -> dict[str, Any]:
        return {"title": one_line(sync.report.title, TITLE_MAX),
                "description": markdown(sync.report, marker=None, limit=DESCRIPTION_MAX)}

    async def create(self, sync: Sync) -> ExternalIssue:
        config: LinearConfig = sync.config
        issue_id = issue_uuid(sync.marker, self.target(config))
        variables = {"input": {"id": issue_id, "teamId": config.team_id, **self._content(sync),
                               "priority": PRIORITY.get(sync.report.severity, 0)}}
        try:
            data = await self._graphql(sync, CREATE, variables, "create the Linear issue")
        except LinearError as err:
            kind = err.type.lower()
            if kind not in AUTH_TYPES and kind != "ratelimited" and err.status < 500:
                # Most likely our own earlier attempt: the id is taken. Read it back.
                found = await self._read(sync, issue_id)
                if found is not None:
                    return found
            self._raise(err, "create the Linear issue", f"team {config.team_id} not found or not accessible")
            raise
        payload = data.get("issueCreate") or {}
        if not payload.get("success"):
            raise PlatformRejected("linear: issueCreate did not succeed")
        return self._issue(payload.get("issue"))

    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        issue_id = str(existing.ref.get("issueId") or existing.external_id)
        try:
            data = await self._graphql(sync, UPDATE, {"id": issue_id, "input": self._content(sync)},
                                       "update the Linear issue")
        except LinearError as err:
            self._raise(err, "update the Linear issue",
                        f"issue {existing.external_id} recorded for this report is gone (remove metadata "
                        "integrations.linear to create a new one)")
            raise
        payload = data.get("issueUpdate") or {}
        if not payload.get("success"):
            raise PlatformRejected("linear: issueUpdate did not succeed")
        return self._issue(payload.get("issue"))
