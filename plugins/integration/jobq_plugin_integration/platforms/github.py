"""GitHub Issues, REST: ``POST /repos/{owner}/{repo}/issues``, ``PATCH …/issues/{number}``.

Token auth (classic or fine-grained PAT, or a GitHub App installation token). ``apiUrl`` points
at GitHub Enterprise Server (``https://ghe.example.com/api/v3``). The body ends with an HTML
comment holding the report's marker: a retry lists the repository's issues updated since the
job was created (a database read, not the lagging search index) and adopts the one carrying it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import attrs
import httpx

from ..errors import PlatformRejected
from ..fields import api_url, pattern, secret
from ..platform import (
    DEFAULT_RATE_LIMIT_DELAY,
    ExternalIssue,
    Platform,
    Sync,
    json_body,
    ratelimit_reset,
    retry_after,
)
from ..render import markdown, one_line

API_VERSION = "2022-11-28"
TITLE_MAX = 256
BODY_MAX = 65536
LOOKBACK_SLACK = 120.0  # seconds of clock skew tolerated between Redis (job times) and GitHub


@attrs.frozen(kw_only=True)
class GitHubCredentials:
    token: str = secret()


@attrs.frozen(kw_only=True)
class GitHubConfig:
    owner: str = attrs.field(validator=pattern(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})", "a GitHub user or "
                                                                                        "organisation name"))
    repo: str = attrs.field(validator=pattern(r"(?!\.\.?$)[A-Za-z0-9._-]{1,100}", "a repository name"))
    api_url: str = attrs.field(default="https://api.github.com", validator=api_url())


class GitHubPlatform(Platform):
    name = "github"
    title = "GitHub Issues"
    credentials_type = GitHubCredentials
    config_type = GitHubConfig

    def _repo_url(self, config: GitHubConfig) -> str:
        return f"{config.api_url.rstrip('/')}/repos/{quote(config.owner, safe='')}/{quote(config.repo, safe='')}"

    def target(self, config: GitHubConfig) -> str:
        return f"{config.api_url.rstrip('/')}/{config.owner}/{config.repo}".lower()

    def api_urls(self, config: GitHubConfig) -> list[str]:
        return [config.api_url]

    def _headers(self, credentials: GitHubCredentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {credentials.token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION}

    def rate_limit_delay(self, response: httpx.Response) -> float | None:
        # GitHub signals both primary and secondary limits with 403 as well as 429.
        if response.status_code not in (403, 429):
            return None
        delay = retry_after(response.headers)
        if delay is not None:
            return delay
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = ratelimit_reset(response.headers)
            return DEFAULT_RATE_LIMIT_DELAY if reset is None else reset
        return DEFAULT_RATE_LIMIT_DELAY if response.status_code == 429 else None

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:300]
        if not isinstance(body, dict):
            return str(body)[:300]
        text = str(body.get("message") or "")
        for err in body.get("errors") or []:
            if isinstance(err, dict):
                text += f"; {err.get('field', '')} {err.get('code', '')} {err.get('message', '')}".rstrip()
        return text

    def _content(self, sync: Sync) -> dict[str, Any]:
        return {"title": one_line(sync.report.title, TITLE_MAX),
                "body": markdown(sync.report, marker=sync.marker, limit=BODY_MAX)}

    def _issue(self, body: Any) -> ExternalIssue:
        if not isinstance(body, dict) or not isinstance(body.get("number"), int) or not body.get("html_url"):
            raise PlatformRejected("github: the answer holds no issue number")
        return ExternalIssue(external_id=str(body["number"]), external_url=str(body["html_url"]),
                             ref={"number": body["number"], "id": body.get("id"), "nodeId": body.get("node_id")})

    def _not_found(self, config: GitHubConfig) -> str:
        return (f"repository {config.owner}/{config.repo} not found at {config.api_url}, or the token cannot "
                "see it (GitHub answers 404 for private repositories the token lacks access to)")

    async def create(self, sync: Sync) -> ExternalIssue:
        config: GitHubConfig = sync.config
        response = await sync.http.request(
            "POST", f"{self._repo_url(config)}/issues", action="create the GitHub issue",
            not_found=self._not_found(config), ok=(201,), json=self._content(sync),
            headers=self._headers(sync.credentials))
        return self._issue(json_body(response, self.name, "create"))

    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        config: GitHubConfig = sync.config
        number = existing.ref.get("number") or existing.external_id
        response = await sync.http.request(
            "PATCH", f"{self._repo_url(config)}/issues/{int(number)}", action="update the GitHub issue",
            not_found=f"issue #{number} of {config.owner}/{config.repo} recorded for this report is gone or not "
                      "visible to the token (remove metadata integrations.github to create a new one)",
            ok=(200,), json=self._content(sync), headers=self._headers(sync.credentials))
        return self._issue(json_body(response, self.name, "update"))

    async def find_existing(self, sync: Sync) -> ExternalIssue | None:
        config: GitHubConfig = sync.config
        since = datetime.fromtimestamp(sync.since - LOOKBACK_SLACK, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        response = await sync.http.send(
            "GET", f"{self._repo_url(config)}/issues", action="look for an earlier GitHub issue",
            params={"state": "all", "sort": "created", "direction": "desc", "per_page": "100", "since": since},
            headers=self._headers(sync.credentials))
        if response.status_code == 404:
            return None  # the create call that follows words the missing repository
        if response.status_code != 200:
            self.raise_for_response(response, action="look for an earlier GitHub issue",
                                    not_found=self._not_found(config), redact=sync.http.redact)
        tag = f"<!-- {sync.marker} -->"
        for item in json_body(response, self.name, "list") or []:
            if isinstance(item, dict) and "pull_request" not in item and tag in str(item.get("body") or ""):
                return self._issue(item)
        return None
