"""Jira Cloud, REST API v3: ``POST /rest/api/3/issue``, ``PUT /rest/api/3/issue/{id}``.

Basic auth with the account's e-mail and an API token. The description is Atlassian Document
Format. The issue carries the report's marker as a label, which JQL can search: a retry whose
earlier create lost its response finds the issue with ``labels = "jobq-…"``. Jira's search index
lags writes by seconds, so a retry that comes sooner can miss it (see the docs).
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
import httpx

from ..errors import PlatformRejected, TargetNotFound
from ..fields import api_url, non_empty, pattern, secret
from ..platform import ExternalIssue, Platform, Sync, json_body
from ..render import adf, one_line

SUMMARY_MAX = 255


@attrs.frozen(kw_only=True)
class JiraCredentials:
    email: str = secret(validator=pattern(r"[^@\s]+@[^@\s]+", "an e-mail address"))
    api_token: str = secret()


@attrs.frozen(kw_only=True)
class JiraConfig:
    """:param site_url: ``https://your-domain.atlassian.net``. :param project_key: e.g. ``BUG``."""

    site_url: str = attrs.field(validator=api_url())
    project_key: str = attrs.field(validator=pattern(r"[A-Z][A-Z0-9_]{0,254}",
                                                     "a Jira project key (uppercase letters, digits, _)"))
    issue_type: str = attrs.field(default="Bug", validator=non_empty(255))


class JiraPlatform(Platform):
    name = "jira"
    title = "Jira Cloud"
    credentials_type = JiraCredentials
    config_type = JiraConfig

    def _base(self, config: JiraConfig) -> str:
        return config.site_url.rstrip("/")

    def target(self, config: JiraConfig) -> str:
        return f"{self._base(config)}/projects/{config.project_key}"

    def api_urls(self, config: JiraConfig) -> list[str]:
        return [self._base(config)]

    def secret_values(self, credentials: JiraCredentials) -> list[str]:
        return [credentials.api_token, f"{credentials.email}:{credentials.api_token}"]

    def _headers(self, credentials: JiraCredentials) -> dict[str, str]:
        pair = f"{credentials.email}:{credentials.api_token}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Accept": "application/json"}

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:300]
        if not isinstance(body, dict):
            return str(body)[:300]
        parts = [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        return "; ".join(parts) or str(body)[:300]

    def _fields(self, sync: Sync) -> dict[str, Any]:
        return {"summary": one_line(sync.report.title, SUMMARY_MAX), "description": adf(sync.report)}

    def _issue(self, config: JiraConfig, body: Any) -> ExternalIssue:
        if not isinstance(body, dict) or not body.get("key") or not body.get("id"):
            raise PlatformRejected("jira: the create answer holds no issue key")
        key = str(body["key"])
        return ExternalIssue(external_id=key, external_url=f"{self._base(config)}/browse/{key}",
                             ref={"issueId": str(body["id"])})

    async def create(self, sync: Sync) -> ExternalIssue:
        config: JiraConfig = sync.config
        fields = {"project": {"key": config.project_key}, "issuetype": {"name": config.issue_type},
                  **self._fields(sync), "labels": [sync.marker]}
        response = await sync.http.send("POST", f"{self._base(config)}/rest/api/3/issue",
                                        action="create the Jira issue", json={"fields": fields},
                                        headers=self._headers(sync.credentials))
        if response.status_code == 400:
            self._raise_bad_request(response, config, sync)
        if response.status_code != 201:
            self.raise_for_response(response, action="create the Jira issue",
                                    not_found=f"no Jira REST API at {self._base(config)} (check config.siteUrl)",
                                    redact=sync.http.redact)
        return self._issue(config, json_body(response, self.name, "create"))

    def _raise_bad_request(self, response: httpx.Response, config: JiraConfig, sync: Sync) -> None:
        said = sync.http.redact(self.error_message(response), 300)
        try:
            errors = response.json().get("errors") or {}
        except (ValueError, AttributeError):
            errors = {}
        if "project" in errors:
            raise TargetNotFound(f"jira: project {config.project_key!r} does not exist or this account cannot "
                                 f"create issues in it ({said})")
        if "issuetype" in errors:
            raise PlatformRejected(f"jira: issue type {config.issue_type!r} is not available in project "
                                   f"{config.project_key} ({said}); set config.issueType")
        raise PlatformRejected(f"jira: HTTP 400 while trying to create the Jira issue ({said})")

    async def update(self, sync: Sync, existing: ExternalIssue) -> ExternalIssue:
        config: JiraConfig = sync.config
        issue_id = str(existing.ref.get("issueId") or existing.external_id)
        await sync.http.request(
            "PUT", f"{self._base(config)}/rest/api/3/issue/{issue_id}", action="update the Jira issue",
            not_found=f"issue {existing.external_id} recorded for this report no longer exists or is not "
                      "visible to this account (remove metadata integrations.jira to create a new one)",
            ok=(200, 204), json={"fields": self._fields(sync)}, headers=self._headers(sync.credentials))
        return existing

    async def find_existing(self, sync: Sync) -> ExternalIssue | None:
        config: JiraConfig = sync.config
        jql = f'project = "{config.project_key}" AND labels = "{sync.marker}" ORDER BY created ASC'
        response = await sync.http.send("GET", f"{self._base(config)}/rest/api/3/search/jql",
                                        action="search for an earlier Jira issue",
                                        params={"jql": jql, "fields": "summary", "maxResults": "1"},
                                        headers=self._headers(sync.credentials))
        if response.status_code in (400, 404):
            # a project that does not exist yet, or a Jira without the search endpoint: the create
            # call that follows reports the real problem
            return None
        if response.status_code != 200:
            self.raise_for_response(response, action="search for an earlier Jira issue",
                                    not_found="search endpoint missing", redact=sync.http.redact)
        body = json_body(response, self.name, "search")
        issues = body.get("issues") if isinstance(body, dict) else None
        if not issues:
            return None
        return self._issue(config, issues[0])
