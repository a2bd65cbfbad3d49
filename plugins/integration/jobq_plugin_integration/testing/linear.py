"""Linear's GraphQL endpoint, the operations jobq uses: ``issueCreate``, ``issueUpdate``, ``issue``.

Given Linear's schema (``graphql.build_schema`` of ``schema.graphql``), every document is
validated as Linear's server does and refused with GraphQL errors when invalid, variables
included. Errors carry Linear's ``extensions`` (``type``, ``code``, ``userPresentableMessage``):
``authentication error`` (HTTP 401), ``ratelimited`` (HTTP 400, ``RATELIMITED``, with
``x-ratelimit-requests-reset``), ``invalid input`` (HTTP 200, ``data: null``) for a taken id or
an unknown team.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from .server import FakeVendorServer, Request, Response


def gql_error(status: int, message: str, type_: str, code: str, *, user_message: str | None = None,
              headers: dict[str, str] | None = None) -> Response:
    ext = {"type": type_, "code": code, "userError": status < 500,
           "userPresentableMessage": user_message or message}
    return Response(status, json={"errors": [{"message": message, "extensions": ext}], "data": None},
                    headers=dict(headers or {}))


class FakeLinear(FakeVendorServer):
    """:param teams: team id → key (``ENG``). :param schema: a graphql-core schema to validate against."""

    def __init__(self, *, api_key: str = "lin_api_testkey", teams: dict[str, str] | None = None,
                 schema: Any = None, path: str = "/graphql", echo_credentials: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.teams = teams if teams is not None else {"team-eng": "ENG"}
        self.schema = schema
        self.path = path
        self.echo_credentials = echo_credentials
        self.issues: dict[str, dict[str, Any]] = {}
        self.route("POST", re.escape(path), "graphql", self._graphql)

    @property
    def api_url(self) -> str:
        return self.url + self.path

    def authenticate(self, request: Request) -> Response | None:
        presented = request.headers.get("authorization", "")
        if presented in (self.api_key, f"Bearer {self.api_key}"):
            return None
        message = "Authentication required, not authenticated"
        if self.echo_credentials:
            message += f" (key {presented})"
        return gql_error(401, message, "authentication error", "AUTHENTICATION_ERROR",
                         user_message="You need to authenticate to access this operation.")

    def rate_limit_next(self, *, reset_in: float = 2.0, times: int = 1) -> None:
        reset_ms = int((time.time() + reset_in) * 1000)
        body = {"errors": [{"message": "Rate limit exceeded", "extensions": {
            "type": "ratelimited", "code": "RATELIMITED", "userError": True,
            "userPresentableMessage": "Too many requests, slow down."}}], "data": None}
        self.fail_next(400, json=body, headers={"x-ratelimit-requests-limit": "1500",
                                                "x-ratelimit-requests-remaining": "0",
                                                "x-ratelimit-requests-reset": str(reset_ms)},
                       operation="graphql", times=times)

    def operation_of(self, request: Request) -> str:
        """The root field a request calls (for tests): ``issueCreate``, ``issueUpdate``, ``issue``."""
        from graphql import GraphQLError, parse

        try:
            return self._root(parse((request.json or {}).get("query", "")))[0].name.value
        except (GraphQLError, IndexError, AttributeError, TypeError):
            return ""

    @staticmethod
    def _root(document: Any) -> list[Any]:
        op = document.definitions[0]
        return list(op.selection_set.selections)

    def _validate(self, document: Any, variables: Any) -> Response | None:
        if self.schema is None:
            return None
        from graphql import validate
        from graphql.execution.values import get_variable_values

        errors = validate(self.schema, document)
        if not errors:
            op = document.definitions[0]
            coerced = get_variable_values(self.schema, op.variable_definitions or [], variables or {})
            if isinstance(coerced, list):
                errors = coerced
        if errors:
            return gql_error(400, errors[0].message, "graphql error", "GRAPHQL_VALIDATION_FAILED")
        return None

    def _graphql(self, request: Request, _m: re.Match[str]) -> Response:
        from graphql import GraphQLError, parse

        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return gql_error(400, "Must provide query string.", "graphql error", "BAD_REQUEST")
        variables = body.get("variables") or {}
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return gql_error(400, f"Syntax Error: {exc.message}", "graphql error", "GRAPHQL_PARSE_FAILED")
        refused = self._validate(document, variables)
        if refused:
            return refused
        field = self._root(document)[0]
        op = field.name.value
        if op == "issueCreate":
            result, error = self._create(variables.get("input") or {})
        elif op == "issueUpdate":
            result, error = self._update(variables.get("id"), variables.get("input") or {})
        elif op == "issue":
            result, error = self._read(variables.get("id"))
        else:
            return gql_error(400, f"fake Linear does not implement {op}", "graphql error", "UNSUPPORTED")
        if error is not None:
            return error
        name = field.alias.value if field.alias else op
        return Response(200, json={"data": {name: _project(result, field.selection_set)}})

    def _issue_out(self, issue: dict[str, Any]) -> dict[str, Any]:
        return {"id": issue["id"], "identifier": issue["identifier"], "url": issue["url"],
                "title": issue["title"], "team": {"id": issue["teamId"]}}

    def _create(self, data: dict[str, Any]) -> tuple[Any, Response | None]:
        team = data.get("teamId")
        if team not in self.teams:
            return None, gql_error(200, "Entity not found: Team", "invalid input", "INPUT_ERROR",
                             user_message="Could not find referenced Team.")
        issue_id = data.get("id") or str(uuid.uuid4())
        try:
            uuid.UUID(issue_id, version=4)
        except ValueError:
            return None, gql_error(200, "Argument Validation Error", "invalid input", "INPUT_ERROR",
                             user_message="id must be a UUID.")
        with self._lock:
            if issue_id in self.issues:
                return None, gql_error(200, "Entity already exists", "invalid input", "INPUT_ERROR",
                                 user_message="An issue with this id already exists.")
            key = self.teams[team]
            number = 1 + sum(1 for i in self.issues.values() if i["teamId"] == team)
            identifier = f"{key}-{number}"
            self.issues[issue_id] = {"id": issue_id, "identifier": identifier, "teamId": team,
                                     "title": data.get("title"), "description": data.get("description"),
                                     "priority": data.get("priority"),
                                     "url": f"https://linear.example/issue/{identifier}"}
        return {"success": True, "lastSyncId": 1.0, "issue": self._issue_out(self.issues[issue_id])}, None

    def _update(self, issue_id: Any, data: dict[str, Any]) -> tuple[Any, Response | None]:
        issue = self.issues.get(issue_id) if isinstance(issue_id, str) else None
        if issue is None:
            return None, gql_error(200, "Entity not found: Issue", "invalid input", "INPUT_ERROR",
                             user_message="Could not find referenced Issue.")
        with self._lock:
            for key in ("title", "description"):
                if key in data:
                    issue[key] = data[key]
        return {"success": True, "lastSyncId": 2.0, "issue": self._issue_out(issue)}, None

    def _read(self, issue_id: Any) -> tuple[Any, Response | None]:
        issue = self.issues.get(issue_id) if isinstance(issue_id, str) else None
        if issue is None:
            return None, gql_error(200, "Entity not found: Issue", "invalid input", "INPUT_ERROR",
                             user_message="Could not find referenced Issue.")
        return self._issue_out(issue), None


def _project(value: Any, selection_set: Any) -> Any:
    """Keep only the selected fields, under their aliases, as a GraphQL server answers."""
    if selection_set is None or value is None:
        return value
    if isinstance(value, list):
        return [_project(v, selection_set) for v in value]
    out = {}
    for sel in selection_set.selections:
        name = sel.name.value
        key = sel.alias.value if sel.alias else name
        out[key] = "Issue" if name == "__typename" else _project(value.get(name), sel.selection_set)
    return out
