"""Jira Cloud REST v3, the part jobq uses: create, edit, read and JQL-search issues.

Answers in Jira's shapes: ``CreatedIssue`` on 201, ``ErrorCollection``
(``{"errorMessages": [...], "errors": {field: message}}``) on 400/401/404, 204 on edit,
429 with ``Retry-After``. The JQL understood is the subset jobq sends
(``project = "K" AND labels = "L"``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from .server import FakeVendorServer, Request, Response

API = "/rest/api/3"


def error_collection(status: int, *messages: str, **errors: str) -> Response:
    return Response(status, json={"errorMessages": list(messages), "errors": errors})


class FakeJira(FakeVendorServer):
    """:param projects: project key → issue type names. :param echo_credentials: put the presented
    credentials in 401 bodies (to prove the client never repeats them)."""

    def __init__(self, *, email: str = "dev@example.com", api_token: str = "jira-api-token",
                 projects: dict[str, list[str]] | None = None, echo_credentials: bool = False) -> None:
        super().__init__()
        self.email = email
        self.api_token = api_token
        self.projects = projects if projects is not None else {"BUG": ["Bug", "Task"]}
        self.echo_credentials = echo_credentials
        self.issues: dict[str, dict[str, Any]] = {}
        self._next_id = 10000
        self.route("POST", f"{API}/issue", "createIssue", self._create)
        self.route("PUT", f"{API}/issue/([^/]+)", "editIssue", self._edit)
        self.route("GET", f"{API}/issue/([^/]+)", "getIssue", self._get)
        self.route("GET", f"{API}/search/jql", "searchIssues", self._search)

    def authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        presented = ""
        if header.startswith("Basic "):
            try:
                presented = base64.b64decode(header[6:]).decode()
            except ValueError:
                presented = ""
        if presented == f"{self.email}:{self.api_token}":
            return None
        text = "Client must be authenticated to access this resource."
        if self.echo_credentials:
            text += f" Rejected credentials: {presented!r} ({header})"
        return error_collection(401, text)

    def not_found(self, request: Request) -> Response:
        return error_collection(404, "null for uri: " + request.path)

    def _find(self, key_or_id: str) -> dict[str, Any] | None:
        for issue in self.issues.values():
            if key_or_id in (issue["id"], issue["key"]):
                return issue
        return None

    def _check_fields(self, fields: Any, creating: bool) -> Response | None:
        if not isinstance(fields, dict):
            return error_collection(400, "Can not deserialize the request: fields must be an object")
        errors: dict[str, str] = {}
        if creating:
            project = (fields.get("project") or {}).get("key")
            if project not in self.projects:
                errors["project"] = "valid project is required"
            else:
                itype = (fields.get("issuetype") or {}).get("name")
                if itype not in self.projects[project]:
                    errors["issuetype"] = "Specify a valid issue type"
        if "summary" in fields or creating:
            summary = fields.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif len(summary) > 255 or "\n" in summary:
                errors["summary"] = "Summary must be less than 255 characters and a single line."
        if "description" in fields:
            desc = fields["description"]
            if not (isinstance(desc, dict) and desc.get("type") == "doc" and desc.get("version") == 1):
                errors["description"] = ("Operation value must be an Atlassian Document "
                                         "(see the Atlassian Document Format)")
        for label in fields.get("labels") or []:
            if not isinstance(label, str) or " " in label or len(label) > 255:
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        return error_collection(400, **errors) if errors else None

    def _create(self, request: Request, _m: re.Match[str]) -> Response:
        body = request.json
        if not isinstance(body, dict):
            return error_collection(400, "Can not deserialize the request body")
        fields = body.get("fields")
        refused = self._check_fields(fields, creating=True)
        if refused:
            return refused
        with self._lock:
            self._next_id += 1
            project = fields["project"]["key"]
            number = 1 + sum(1 for i in self.issues.values() if i["key"].startswith(project + "-"))
            issue = {"id": str(self._next_id), "key": f"{project}-{number}", "fields": dict(fields)}
            self.issues[issue["id"]] = issue
        return Response(201, json={"id": issue["id"], "key": issue["key"],
                                   "self": f"{self.url}{API}/issue/{issue['id']}"})

    def _edit(self, request: Request, m: re.Match[str]) -> Response:
        issue = self._find(m.group(1))
        if issue is None:
            return error_collection(404, "Issue does not exist or you do not have permission to see it.")
        body = request.json
        if not isinstance(body, dict):
            return error_collection(400, "Can not deserialize the request body")
        refused = self._check_fields(body.get("fields") or {}, creating=False)
        if refused:
            return refused
        with self._lock:
            issue["fields"].update(body.get("fields") or {})
        return Response(204)

    def _get(self, _request: Request, m: re.Match[str]) -> Response:
        issue = self._find(m.group(1))
        if issue is None:
            return error_collection(404, "Issue does not exist or you do not have permission to see it.")
        return Response(200, json={"id": issue["id"], "key": issue["key"],
                                   "self": f"{self.url}{API}/issue/{issue['id']}", "fields": issue["fields"]})

    def _search(self, request: Request, _m: re.Match[str]) -> Response:
        jql = request.param("jql") or ""
        project = re.search(r'project\s*=\s*"?([A-Z][A-Z0-9_]*)"?', jql)
        label = re.search(r'labels\s*=\s*"([^"]+)"', jql)
        if project and project.group(1) not in self.projects:
            return error_collection(400, f"The value '{project.group(1)}' does not exist for the field 'project'.")
        with self._lock:
            hits = [i for i in self.issues.values()
                    if (not project or i["key"].startswith(project.group(1) + "-"))
                    and (not label or label.group(1) in (i["fields"].get("labels") or []))]
        limit = int(request.param("maxResults") or 50)
        return Response(200, json={"issues": [{"id": i["id"], "key": i["key"], "self": f"{self.url}{API}/issue/"
                                               f"{i['id']}", "fields": {"summary": i["fields"].get("summary")}}
                                              for i in hits[:limit]], "isLast": True})
