"""GitHub REST, the issue endpoints jobq uses: create, update, get and list a repository's issues.

Answers in GitHub's shapes: the ``issue`` object, ``basic-error`` (``{"message",
"documentation_url", "status"}``) for 401/403/404/410, ``validation-error`` for 422, and both
rate limits (primary: 403 with ``x-ratelimit-remaining: 0``; secondary: 403 with
``retry-after``). Mount it under ``/api/v3`` to play GitHub Enterprise Server.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from .server import FakeVendorServer, Request, Response

DOCS = "https://docs.github.com/rest"


def basic_error(status: int, message: str, docs: str = DOCS) -> Response:
    return Response(status, json={"message": message, "documentation_url": docs, "status": str(status)})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub(FakeVendorServer):
    """:param repos: ``owner/repo`` names that exist. :param prefix: ``/api/v3`` for Enterprise."""

    def __init__(self, *, token: str = "ghp_test_token", repos: tuple[str, ...] = ("octo/app",),
                 prefix: str = "", echo_credentials: bool = False) -> None:
        super().__init__()
        self.token = token
        self.repos = {r.lower() for r in repos}
        self.prefix = prefix
        self.echo_credentials = echo_credentials
        self.issues: dict[str, dict[int, dict[str, Any]]] = {r: {} for r in self.repos}
        self._next_id = 1
        repo = f"{re.escape(prefix)}/repos/([^/]+)/([^/]+)"
        self.route("POST", f"{repo}/issues", "issues/create", self._create)
        self.route("GET", f"{repo}/issues", "issues/list-for-repo", self._list)
        self.route("PATCH", rf"{repo}/issues/(\d+)", "issues/update", self._update)
        self.route("GET", rf"{repo}/issues/(\d+)", "issues/get", self._get)

    @property
    def api_url(self) -> str:
        return self.url + self.prefix

    def authenticate(self, request: Request) -> Response | None:
        if not request.headers.get("user-agent"):
            return basic_error(403, "Request forbidden by administrative rules. Please make sure your request "
                                    "has a User-Agent header.")
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() in ("bearer", "token") and presented == self.token:
            return None
        message = "Bad credentials"
        if self.echo_credentials:
            message += f": {presented}"
        return basic_error(401, message)

    def not_found(self, request: Request) -> Response:
        return basic_error(404, "Not Found")

    def _repo(self, m: re.Match[str]) -> str | None:
        name = f"{m.group(1)}/{m.group(2)}".lower()
        return name if name in self.repos else None

    def _issue_json(self, repo: str, issue: dict[str, Any]) -> dict[str, Any]:
        base = f"{self.api_url}/repos/{repo}"
        n = issue["number"]
        user = {"login": "jobq-bot", "id": 7, "node_id": "MDQ6VXNlcjc=", "avatar_url": "https://example.com/a.png",
                "gravatar_id": "", "url": f"{self.api_url}/users/jobq-bot", "html_url": "https://example.com/jobq-bot",
                "followers_url": "", "following_url": "", "gists_url": "", "starred_url": "",
                "subscriptions_url": "", "organizations_url": "", "repos_url": "", "events_url": "",
                "received_events_url": "", "type": "Bot", "site_admin": False}
        return {
            "id": issue["id"], "node_id": f"I_kwDO{issue['id']:08d}", "url": f"{base}/issues/{n}",
            "repository_url": base, "labels_url": f"{base}/issues/{n}/labels{{/name}}",
            "comments_url": f"{base}/issues/{n}/comments", "events_url": f"{base}/issues/{n}/events",
            "html_url": f"https://github.example/{repo}/issues/{n}", "number": n, "state": "open",
            "title": issue["title"], "body": issue["body"], "user": user, "labels": [], "assignee": None,
            "assignees": [], "milestone": None, "locked": False, "comments": 0,
            "created_at": _iso(issue["created"]), "updated_at": _iso(issue["updated"]), "closed_at": None,
            "author_association": "NONE",
        }

    def _validate(self, body: Any, creating: bool) -> Response | None:
        if not isinstance(body, dict):
            return basic_error(400, "Problems parsing JSON")
        title = body.get("title")
        if creating and (title is None or title == ""):
            return Response(422, json={"message": "Validation Failed", "documentation_url": DOCS,
                                       "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
                                       "status": "422"})
        if title is not None and len(str(title)) > 256:
            return Response(422, json={"message": "Validation Failed", "documentation_url": DOCS,
                                       "errors": [{"resource": "Issue", "code": "custom", "field": "title",
                                                   "message": "title is too long (maximum is 256 characters)"}],
                                       "status": "422"})
        if len(str(body.get("body") or "")) > 65536:
            return Response(422, json={"message": "Validation Failed", "documentation_url": DOCS,
                                       "errors": [{"resource": "Issue", "code": "custom", "field": "body",
                                                   "message": "body is too long (maximum is 65536 characters)"}],
                                       "status": "422"})
        return None

    def _create(self, request: Request, m: re.Match[str]) -> Response:
        repo = self._repo(m)
        if repo is None:
            return basic_error(404, "Not Found", "https://docs.github.com/rest/issues/issues#create-an-issue")
        refused = self._validate(request.json, creating=True)
        if refused:
            return refused
        now = time.time()
        with self._lock:
            number = len(self.issues[repo]) + 1
            issue = {"id": self._next_id, "number": number, "title": str(request.json["title"]),
                     "body": request.json.get("body"), "created": now, "updated": now}
            self._next_id += 1
            self.issues[repo][number] = issue
        data = self._issue_json(repo, issue)
        return Response(201, json=data, headers={"Location": data["url"]})

    def _update(self, request: Request, m: re.Match[str]) -> Response:
        repo = self._repo(m)
        issue = self.issues.get(repo or "", {}).get(int(m.group(3)))
        if issue is None:
            return basic_error(404, "Not Found", "https://docs.github.com/rest/issues/issues#update-an-issue")
        refused = self._validate(request.json, creating=False)
        if refused:
            return refused
        with self._lock:
            for key in ("title", "body"):
                if key in request.json:
                    issue[key] = request.json[key]
            issue["updated"] = time.time()
        return Response(200, json=self._issue_json(repo or "", issue))

    def _get(self, _request: Request, m: re.Match[str]) -> Response:
        repo = self._repo(m)
        issue = self.issues.get(repo or "", {}).get(int(m.group(3)))
        if issue is None:
            return basic_error(404, "Not Found")
        return Response(200, json=self._issue_json(repo or "", issue))

    def _list(self, request: Request, m: re.Match[str]) -> Response:
        repo = self._repo(m)
        if repo is None:
            return basic_error(404, "Not Found")
        since = request.param("since")
        floor = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() if since else 0
        with self._lock:
            items = [i for i in self.issues[repo].values() if i["updated"] >= floor]
        items.sort(key=lambda i: i["created"], reverse=request.param("direction", "desc") == "desc")
        per_page = min(100, int(request.param("per_page") or 30))
        return Response(200, json=[self._issue_json(repo, i) for i in items[:per_page]])

    def rate_limit_next(self, *, reset_in: float = 2.0, secondary: bool = False, times: int = 1) -> None:
        """Answer the next requests as an exhausted primary (or a secondary) rate limit does."""
        if secondary:
            self.fail_next(403, json={"message": "You have exceeded a secondary rate limit. Please wait a few "
                                                 "minutes before you try again.", "documentation_url": DOCS},
                           headers={"retry-after": str(int(reset_in))}, times=times)
        else:
            reset = int(time.time() + reset_in)
            self.fail_next(403, json={"message": "API rate limit exceeded for user ID 7.", "documentation_url": DOCS},
                           headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                                    "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core"},
                           times=times)
