"""The spec checker of conftest catches off-spec requests (so the vendor tests' conformance is real),
and the plugin's own request builders produce documents the vendors' descriptions accept."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from jobq_plugin_integration.platform import Report
from jobq_plugin_integration.platforms import linear
from jobq_plugin_integration.render import adf
from jobq_plugin_integration.testing.server import Exchange, FakeVendorServer, Request, Response

BASIC = "Basic " + base64.b64encode(b"a@b.c:t").decode()


def exchange(method: str, path: str, body: Any, operation: str, headers: dict[str, str] | None = None,
             response: Response | None = None) -> Exchange:
    h = {"content-type": "application/json", **(headers or {})}
    return Exchange(Request(method, path, {}, h, b"", body), response, operation)


def check(checker: Any, vendor: str, *exchanges: Exchange) -> list[str]:
    server = FakeVendorServer()
    server.exchanges.extend(exchanges)
    return checker.check(vendor, server)


def test_jira_description_must_be_adf(spec_checker: Any) -> None:
    good = {"fields": {"summary": "x", "description": adf(Report(bug_report_id="b", project_id="p", title="t"))}}
    assert not check(spec_checker, "jira", exchange("POST", "/rest/api/3/issue", good, "createIssue",
                                                    {"authorization": BASIC}))
    plain = {"fields": {"summary": "x", "description": "just text"}}
    problems = check(spec_checker, "jira", exchange("POST", "/rest/api/3/issue", plain, "createIssue",
                                                    {"authorization": BASIC}))
    assert any("not valid ADF" in p for p in problems)
    empty_text = {"fields": {"description": {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}}}
    assert check(spec_checker, "jira", exchange("PUT", "/rest/api/3/issue/10001", empty_text, "editIssue",
                                                {"authorization": BASIC}))


def test_jira_body_schema_and_auth(spec_checker: Any) -> None:
    problems = check(spec_checker, "jira", exchange("POST", "/rest/api/3/issue", {"fields": [1]}, "createIssue"))
    assert any("is not of type 'object'" in p for p in problems)
    assert any("Basic authorization" in p for p in problems)


def test_github_request_rules(spec_checker: Any) -> None:
    ok_headers = {"authorization": "Bearer t", "user-agent": "x", "accept": "application/vnd.github+json"}
    assert not check(spec_checker, "github", exchange("POST", "/repos/o/r/issues", {"title": "t", "body": "b"},
                                                      "issues/create", ok_headers))
    problems = check(spec_checker, "github", exchange("POST", "/repos/o/r/issues", {"body": "no title"},
                                                      "issues/create", {"accept": "application/json"}))
    assert any("'title' is a required property" in p for p in problems)
    assert any("User-Agent" in p for p in problems) and any("Accept" in p for p in problems)
    bad_answer = Response(201, json={"id": "not-an-int"})
    problems = check(spec_checker, "github", exchange("POST", "/repos/o/r/issues", {"title": "t"},
                                                      "issues/create", ok_headers, bad_answer))
    assert any("fake's 201 answer" in p for p in problems)


def test_slack_arguments_come_from_the_spec(spec_checker: Any) -> None:
    auth = {"authorization": "Bearer xoxb-1", "content-type": "application/json; charset=utf-8"}
    assert not check(spec_checker, "slack", exchange("POST", "/api/chat.postMessage",
                                                     {"channel": "C1", "text": "hi"}, "chat.postMessage", auth))
    problems = check(spec_checker, "slack", exchange("POST", "/api/chat.postMessage",
                                                     {"text": "hi", "metadata": {}}, "chat.postMessage", auth))
    assert any("'channel' is a required property" in p for p in problems)
    assert any("Additional properties" in p for p in problems)
    problems = check(spec_checker, "slack", exchange("POST", "/api/chat.update", {"channel": "C1"}, "chat.update",
                                                     {"content-type": "text/plain"}))
    assert any("'ts' is a required property" in p for p in problems)
    assert any("Authorization: Bearer" in p for p in problems)


def test_unknown_operations_are_flagged(spec_checker: Any) -> None:
    problems = check(spec_checker, "jira", exchange("DELETE", "/rest/api/3/issue/1", None, "deleteIssue"))
    assert problems and "not an operation" in problems[0]


@pytest.mark.parametrize("document", [linear.CREATE, linear.UPDATE, linear.READ])
def test_linear_documents_validate_against_the_schema(spec_checker: Any, linear_schema: Any,
                                                      document: str) -> None:
    spec_checker.linear_schema = linear_schema
    variables = {"input": {"teamId": "t", "title": "x"}, "id": "i"}
    if document == linear.READ:
        variables = {"id": "i"}
    elif document == linear.UPDATE:
        variables = {"id": "i", "input": {"title": "x", "description": "d"}}
    ex = exchange("POST", "/graphql", {"query": document, "variables": variables}, "graphql")
    assert spec_checker.check_graphql(ex) == []
    bad = exchange("POST", "/graphql", {"query": document.replace("identifier", "identifierz"),
                                        "variables": variables}, "graphql")
    assert any("Cannot query field 'identifierz'" in p for p in spec_checker.check_graphql(bad))
