"""Fixtures: fake vendor servers whose every exchange is checked against the vendor's own API
description in /work/shared/specs (OpenAPI / Swagger / GraphQL SDL, plus Jira's ADF schema).

A test using ``jira``, ``github``, ``linear`` or ``slack`` fails at teardown if any request the
plugin sent (or any answer the fake gave) does not conform.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobq_plugin_integration.testing import FakeGitHub, FakeJira, FakeLinear, FakeSlack
from jobq_plugin_integration.testing.server import Exchange, FakeVendorServer
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator, OAS30WriteValidator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(os.environ.get("JOBQ_SPECS_DIR", "/work/shared/specs"))

# Lookups jobq makes that the spec excerpts do not describe (documented in docs/plugins/integration.md).
UNSPECIFIED = {
    "jira": {"searchIssues", "getIssue"},
    "github": {"issues/list-for-repo", "issues/get"},
    "slack": {"chat.getPermalink", "conversations.history"},
}


def _load(rel: str) -> dict[str, Any]:
    return json.loads((SPECS / rel).read_text())


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


class OpenApiOperation:
    """One operation of an OpenAPI 3.0 excerpt: validates requests and answers against it."""

    def __init__(self, rel: str, method: str, prefix: str = "") -> None:
        self.doc = _load(rel)
        self.uri = f"urn:jobq-spec:{rel}"
        self.registry = Registry().with_resource(self.uri, Resource(contents=self.doc, specification=DRAFT4))
        (self.template, item), = self.doc["paths"].items()
        self.method = method.lower()
        self.op = item[self.method]
        self.pattern = re.compile(re.escape(prefix) + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.template)))

    def matches(self, ex: Exchange) -> bool:
        return ex.request.method.lower() == self.method and bool(self.pattern.fullmatch(ex.request.path))

    def _pointer(self, *parts: str) -> str:
        return f"{self.uri}#/paths/{_escape(self.template)}/{self.method}/" + "/".join(_escape(p) for p in parts)

    def check(self, ex: Exchange) -> list[str]:
        problems: list[str] = []
        req = ex.request
        params = [self._deref(p) for p in self.op.get("parameters", [])]
        known = {p["name"] for p in params if p["in"] == "query"}
        unknown = set(req.query) - known
        if unknown:
            problems.append(f"query parameters not in the spec: {sorted(unknown)}")
        if "requestBody" in self.op:
            content = self.op["requestBody"]["content"]
            ctype = req.headers.get("content-type", "").split(";")[0].strip()
            if ctype not in content:
                problems.append(f"content type {ctype!r} not in {sorted(content)}")
            else:
                schema = {"$ref": self._pointer("requestBody", "content", ctype, "schema")}
                v = OAS30WriteValidator(schema, registry=self.registry, format_checker=oas30_format_checker)
                problems += [f"request body: {e.message} at {list(e.absolute_path)}"
                             for e in v.iter_errors(req.json)]
        resp = None if ex.injected else ex.response  # injected faults (429, 503) are the test's words
        if resp is not None:
            responses = self.op.get("responses", {})
            key = str(resp.status) if str(resp.status) in responses else "default"
            spec_resp = self._deref(responses.get(key, {}))
            json_content = (spec_resp.get("content") or {}).get("application/json")
            if resp.status not in (204,) and json_content and json_content.get("schema") and resp.json is not None:
                if "$ref" in responses.get(key, {}):
                    ref = responses[key]["$ref"].lstrip("#")
                    pointer = f"{self.uri}#{ref}/content/application~1json/schema"
                else:
                    pointer = self._pointer("responses", key, "content", "application/json", "schema")
                v = OAS30Validator({"$ref": pointer}, registry=self.registry, format_checker=oas30_format_checker)
                problems += [f"fake's {resp.status} answer: {e.message} at {list(e.absolute_path)}"
                             for e in v.iter_errors(resp.json)]
            elif str(resp.status) not in responses and "default" not in responses:
                problems.append(f"the fake answered {resp.status}, a status the spec does not list")
        return problems

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node


class SwaggerFormOperation:
    """A Slack Web API method from the Swagger 2 excerpt; its ``formData`` arguments become a JSON
    schema for JSON bodies (``blocks``/``attachments`` may then be arrays, as Slack accepts)."""

    def __init__(self, rel: str, method: str) -> None:
        self.doc = _load(rel)
        (self.path, item), = self.doc["paths"].items()
        self.method = method.lower()
        self.op = item[self.method]
        self.registry = Registry().with_resource("urn:slack", Resource(contents=self.doc, specification=DRAFT4))
        props: dict[str, Any] = {}
        required = []
        for p in self.op["parameters"]:
            if p["in"] != "formData":
                continue
            schema: dict[str, Any] = {"type": p["type"]}
            if p["name"] == "blocks":  # the Block Kit definition lives in the postMessage excerpt only
                blocks = _load("slack/chat.postMessage.json")["definitions"]["blocks"]
                schema = {"anyOf": [{"type": "string"}, blocks]}
            elif p["name"] == "attachments":
                schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
            props[p["name"]] = schema
            if p.get("required"):
                required.append(p["name"])
        self.body_schema = {"type": "object", "properties": props, "required": required,
                            "additionalProperties": False}

    def matches(self, ex: Exchange) -> bool:
        return ex.request.path == "/api" + self.path and ex.request.method.lower() == self.method

    def check(self, ex: Exchange) -> list[str]:
        req = ex.request
        problems = []
        ctype = req.headers.get("content-type", "")
        if ctype.split(";")[0].strip() not in self.op["consumes"]:
            problems.append(f"content type {ctype!r} not in {self.op['consumes']}")
        auth = req.headers.get("authorization", "")
        if not re.fullmatch(r"Bearer xox[a-z]-\S+", auth):
            problems.append("token not sent as 'Authorization: Bearer xox…'")
        v = Draft4Validator(self.body_schema, registry=self.registry)
        problems += [f"request body: {e.message} at {list(e.absolute_path)}" for e in v.iter_errors(req.json)]
        resp = None if ex.injected else ex.response
        if resp is not None and resp.json is not None:
            ok = resp.status == 200 and resp.json.get("ok") is True
            schema = copy.deepcopy(self.op["responses"]["200" if ok else "default"]["schema"])
            if not ok:  # the spec's error enum is from 2020; Slack has added codes (e.g. "ratelimited")
                schema["properties"]["error"].pop("enum", None)
            else:  # newer answers carry warnings the 2020 schema does not know
                schema["properties"].update(warning={"type": "string"}, response_metadata={"type": "object"})
            v = Draft4Validator({**schema, "definitions": self.doc.get("definitions", {})}, registry=self.registry)
            problems += [f"fake's answer: {e.message} at {list(e.absolute_path)}" for e in v.iter_errors(resp.json)]
        return problems


class SpecChecker:
    """Checks a fake's exchanges against its vendor's descriptions."""

    def __init__(self, linear_schema: Any) -> None:
        self.linear_schema = linear_schema
        self.adf = Draft4Validator(_load("jira/adf-schema-v1-full.json"))
        self._ops: dict[str, list[Any]] = {}

    def operations(self, vendor: str, prefix: str = "") -> list[Any]:
        key = f"{vendor}{prefix}"
        if key not in self._ops:
            self._ops[key] = {
                "jira": lambda: [OpenApiOperation("jira/createIssue.json", "post"),
                                 OpenApiOperation("jira/editIssue.json", "put")],
                "github": lambda: [OpenApiOperation("github/issues-create.json", "post", prefix),
                                   OpenApiOperation("github/issues-update.json", "patch", prefix)],
                "slack": lambda: [SwaggerFormOperation("slack/chat.postMessage.json", "post"),
                                  SwaggerFormOperation("slack/chat.update.json", "post")],
            }[vendor]()
        return self._ops[key]

    def check(self, vendor: str, server: FakeVendorServer, prefix: str = "") -> list[str]:
        problems = []
        for ex in list(server.exchanges):
            where = f"{ex.request.method} {ex.request.path}"
            if not ex.operation:
                continue  # a path the fake does not serve (a test's deliberately wrong URL): answered 404
            if vendor == "linear":
                problems += [f"{where}: {p}" for p in self.check_graphql(ex)]
                continue
            if vendor == "github":
                problems += [f"{where}: {p}" for p in self.check_github_headers(ex)]
            op = next((o for o in self.operations(vendor, prefix) if o.matches(ex)), None)
            if op is None:
                if ex.operation not in UNSPECIFIED[vendor]:
                    problems.append(f"{where}: not an operation of the {vendor} spec excerpts")
                continue
            problems += [f"{where}: {p}" for p in op.check(ex)]
            if vendor == "jira":
                problems += [f"{where}: {p}" for p in self.check_jira(ex)]
        return problems

    def check_jira(self, ex: Exchange) -> list[str]:
        problems = []
        auth = ex.request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            problems.append("no Basic authorization (the spec's basicAuth scheme)")
        fields = (ex.request.json or {}).get("fields") if isinstance(ex.request.json, dict) else None
        description = fields.get("description") if isinstance(fields, dict) else None
        if description is not None:
            problems += [f"description is not valid ADF: {e.message} at {list(e.absolute_path)}"
                         for e in self.adf.iter_errors(description)]
        return problems

    def check_github_headers(self, ex: Exchange) -> list[str]:
        h = ex.request.headers
        problems = []
        if not h.get("user-agent"):
            problems.append("no User-Agent (GitHub requires one)")
        if not re.fullmatch(r"(Bearer|token) \S+", h.get("authorization", "")):
            problems.append("no token authorization")
        if h.get("accept") != "application/vnd.github+json":
            problems.append("Accept is not application/vnd.github+json")
        return problems

    def check_graphql(self, ex: Exchange) -> list[str]:
        from graphql import GraphQLError, parse, validate
        from graphql.execution.values import get_variable_values

        body = ex.request.json
        if not isinstance(body, dict) or "query" not in body:
            return ["not a GraphQL request body"]
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return [f"GraphQL syntax: {exc.message}"]
        errors = [e.message for e in validate(self.linear_schema, document)]
        if not errors:
            op = document.definitions[0]
            coerced = get_variable_values(self.linear_schema, op.variable_definitions or [],
                                          body.get("variables") or {})
            if isinstance(coerced, list):
                errors = [e.message for e in coerced]
        return errors


@pytest.fixture(scope="session")
def linear_schema() -> Any:
    from graphql import build_schema

    return build_schema((SPECS / "linear" / "schema.graphql").read_text())


@pytest.fixture(scope="session")
def spec_checker() -> SpecChecker:
    return SpecChecker(None)


def _serve(server: FakeVendorServer, vendor: str, checker: SpecChecker, prefix: str = "") -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
    problems = checker.check(vendor, server, prefix)
    assert not problems, f"{vendor} requests/answers off-spec:\n" + "\n".join(problems)


@pytest.fixture
def jira(spec_checker: SpecChecker) -> Iterator[FakeJira]:
    yield from _serve(FakeJira(), "jira", spec_checker)


@pytest.fixture
def github(spec_checker: SpecChecker) -> Iterator[FakeGitHub]:
    yield from _serve(FakeGitHub(), "github", spec_checker)


@pytest.fixture
def github_enterprise(spec_checker: SpecChecker) -> Iterator[FakeGitHub]:
    yield from _serve(FakeGitHub(prefix="/api/v3"), "github", spec_checker, "/api/v3")


@pytest.fixture
def linear(spec_checker: SpecChecker, linear_schema: Any) -> Iterator[FakeLinear]:
    spec_checker.linear_schema = linear_schema
    yield from _serve(FakeLinear(schema=linear_schema), "linear", spec_checker)


@pytest.fixture
def slack(spec_checker: SpecChecker) -> Iterator[FakeSlack]:
    yield from _serve(FakeSlack(), "slack", spec_checker)


@pytest.fixture
def loopback_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Let workers reach the fakes (127.0.0.1 over http), give them a fresh report store, and put the
    per-report locks under a key prefix of this test's own (each lock is released when its sync ends,
    and expires anyway)."""
    monkeypatch.setenv("JOBQ_OUTBOUND_ALLOWLIST", "127.0.0.1")
    monkeypatch.setenv("JOBQ_INTEGRATION_ALLOW_HTTP", "1")
    monkeypatch.setenv("JOBQ_INTEGRATION_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("JOBQ_PREFIX", f"jobqt-int-{uuid.uuid4().hex[:10]}")
    db = tmp_path / "reports.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    return db


@pytest.fixture
def store(loopback_env: Path) -> Iterator[Any]:
    """The worker's report store for this test (a fresh SQLite file), closed afterwards."""
    from jobq_plugin_integration import pipeline

    store = pipeline.default_store()
    yield store
    with pipeline._stores_lock:
        for key, value in list(pipeline._stores.items()):
            if value is store:
                del pipeline._stores[key]
    store.close()


@pytest.fixture
def sync(store: Any) -> Any:
    """``sync(data, attempt=1, ...)``: run the pipeline as the handler does (real store, the
    production HTTP client under the outbound policy, the installed platforms) and return its
    result; ``since`` defaults to now."""
    from jobq import Settings
    from jobq.serialization import structure_payload
    from jobq_plugin_integration.http import shared_client
    from jobq_plugin_integration.lock import report_lock
    from jobq_plugin_integration.payload import IntegrationJob
    from jobq_plugin_integration.pipeline import IntegrationSettings, run_sync
    from jobq_plugin_integration.registry import default_registry

    def go(data: dict[str, Any], *, attempt: int = 1, job_id: str = "job-1", since: float | None = None) -> Any:
        payload = structure_payload(data, IntegrationJob)
        settings = IntegrationSettings.from_env()

        async def main() -> Any:
            client = shared_client(settings.timeout)
            try:
                return await run_sync(payload, job_id=job_id, attempt=attempt,
                                      since=time.time() - 5 if since is None else since, store=store,
                                      client=client, registry=default_registry(), settings=settings,
                                      lock=functools.partial(report_lock, Settings.from_env(), owner=job_id))
            finally:
                await client.aclose()

        return asyncio.run(main())

    return go
