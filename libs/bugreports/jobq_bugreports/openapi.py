"""The intake API's contract: an OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Written by hand from the handlers' own rules (the limits come from :mod:`.store`), checked by
``openapi-spec-validator`` and fuzzed with schemathesis against a live ``jobq api`` in the tests.
"""

from __future__ import annotations

from typing import Any

from .store import MAX_DESCRIPTION, MAX_TITLE, MAX_URL, SEVERITIES

_REF = "#/components/schemas/"


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}},
    }
    if retry:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                               "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return response


def _common_errors() -> dict[str, Any]:
    """Answers any request can get from the server itself, whatever the route."""
    return {
        "408": _error("The headers or the body did not arrive within the server's deadlines."),
        "500": _error("A bug; logged with its traceback. Nothing was created unless a 201 was sent."),
        "503": _error("Too many open connections (ERR_OVERLOADED), or Redis or the database is unavailable "
                      "(ERR_QUEUE_UNAVAILABLE, ERR_STORE_UNAVAILABLE), nothing was created; or an erasure could not "
                      "finish (ERR_ERASURE_INCOMPLETE): the report is kept, send the DELETE again.", retry=True),
    }


def _schemas() -> dict[str, Any]:
    nullable_time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^ERR_[A-Z0-9_]+$"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {
                        "type": "object", "required": ["field", "message"],
                        "properties": {"field": {"type": "string", "description": "e.g. title, "
                                                 "sessionReplay.events[3], or (body)"},
                                       "message": {"type": "string"}}}},
                    "limit": {"type": "integer", "description": "The body limit in bytes (413 only)."},
                },
            }},
        },
        "NewReport": {
            "type": "object", "required": ["title"], "additionalProperties": False,
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": MAX_TITLE, "pattern": r"\S",
                          "description": "Not blank."},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION, "default": ""},
                "severity": {"enum": list(SEVERITIES), "default": "medium"},
                "url": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_URL},
                "screenshot": {"type": "string", "pattern": "^data:image/(png|jpeg|webp);base64,[A-Za-z0-9+/=]+$",
                               "description": "A data URL; the screenshot worker decodes and checks the image."},
                "sessionReplay": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"events": {"type": "array", "items": {"type": "object"},
                                              "description": "rrweb events; an empty list enqueues nothing."}},
                },
            },
        },
        "JobIds": {
            "type": "object", "additionalProperties": False,
            "properties": {
                "screenshots": {"type": "string"}, "replays": {"type": "string"},
                "integrations": {"type": "object", "additionalProperties": {"type": "string"}},
                "notifications": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "ReportFields": {
            "type": "object",
            "required": ["id", "projectId", "title", "description", "severity", "url", "metadata",
                         "createdAt", "updatedAt", "jobs"],
            "properties": {
                "id": {"type": "string"}, "projectId": {"type": "string"}, "title": {"type": "string"},
                "description": {"type": "string"}, "severity": {"enum": list(SEVERITIES)},
                "url": {"type": ["string", "null"]},
                "metadata": {"type": "object", "description": "What the workers recorded; storage "
                             "locations that are not public URLs are null."},
                "createdAt": {"type": "string", "format": "date-time"},
                "updatedAt": {"type": "string", "format": "date-time"},
            },
        },
        "Report": {"allOf": [{"$ref": _REF + "ReportFields"}],
                   "properties": {"jobs": {"$ref": _REF + "JobIds"}}},
        "JobView": {
            "type": "object", "required": ["id", "queue", "state"],
            "properties": {
                "id": {"type": "string"}, "queue": {"type": "string"},
                "state": {"enum": ["waiting", "delayed", "active", "completed", "failed", "paused", "unknown"]},
                "progress": {}, "attempts": {"type": "integer"}, "result": {},
                "failure": {"type": ["object", "null"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}},
                "createdAt": nullable_time, "startedAt": nullable_time, "finishedAt": nullable_time,
            },
        },
        "ReportView": {
            "allOf": [{"$ref": _REF + "ReportFields"}],
            "properties": {"jobs": {
                "type": "object",
                "properties": {
                    "screenshots": {"$ref": _REF + "JobView"}, "replays": {"$ref": _REF + "JobView"},
                    "integrations": {"type": "object", "additionalProperties": {"$ref": _REF + "JobView"}},
                    "notifications": {"type": "object", "additionalProperties": {"$ref": _REF + "JobView"}},
                },
            }},
        },
        "Erasure": {
            "type": "object", "required": ["id", "erased", "jobs", "objects", "externalIssues"],
            "properties": {
                "id": {"type": "string"}, "projectId": {"type": "string"}, "erased": {"const": True},
                "jobs": {"type": "integer", "description": "Jobs removed, in every queue (running ones cancelled)."},
                "objects": {"type": "integer", "description": "Stored objects deleted."},
                "externalIssues": {"type": "array", "description": "Issues filed on external trackers, which "
                                   "jobq cannot delete: delete them there.", "items": {
                                       "type": "object", "required": ["platform", "externalUrl"],
                                       "properties": {"platform": {"type": "string"},
                                                      "externalId": {"type": "string"},
                                                      "externalUrl": {"type": "string"}}}},
            },
        },
        "Health": {"type": "object", "required": ["status"],
                   "properties": {"status": {"enum": ["ok", "unavailable"]}}},
    }


def openapi_document(max_body: int) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the intake API, for a server whose body limit is ``max_body``."""
    unauthorized = _error("Missing or unknown X-API-Key.")
    forbidden = _error("The key is of the other kind: ingest keys only create, read keys only read.")
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobq bug-report intake", "version": "1",
                 "description": "Bug reports from SDKs, stored and processed by jobq workers. Every error "
                                "has the Error shape."},
        "components": {
            "securitySchemes": {
                "ingestKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                              "description": "A JOBQ_API_KEYS key: ships in browsers, can only create reports."},
                "readKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                            "description": "A JOBQ_API_READ_KEYS key: reads the project's reports."},
            },
            "schemas": _schemas(),
        },
        "paths": {
            "/api/v1/reports": {"post": {
                "operationId": "createReport",
                "summary": "Create a report and enqueue its jobs, or nothing.",
                "security": [{"ingestKey": []}],
                "requestBody": {"required": True, "description": f"At most {max_body} bytes.",
                                "content": {"application/json": {"schema": {"$ref": _REF + "NewReport"}}}},
                "responses": {
                    "201": {"description": "Created.",
                            "headers": {"Location": {"description": "The report's URL path.",
                                                     "schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": _REF + "Report"}}}},
                    "400": _error("The body is not JSON, not an object, or has bad fields (listed in errors)."),
                    "401": unauthorized, "403": forbidden,
                    "413": _error(f"The body is over {max_body} bytes, or a job payload over "
                                  "JOBQ_MAX_PAYLOAD_BYTES."),
                    "415": _error("The body is not application/json."),
                    **_common_errors(),
                },
            }},
            "/api/v1/reports/{report_id}": {"get": {
                "operationId": "getReport",
                "summary": "A report with each job's state, progress, result and failure.",
                "security": [{"readKey": []}],
                "parameters": [{"name": "report_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The report.",
                            "content": {"application/json": {"schema": {"$ref": _REF + "ReportView"}}}},
                    "401": unauthorized, "403": forbidden,
                    "404": _error("No such report in the key's project."),
                    **_common_errors(),
                },
            }, "delete": {
                "operationId": "eraseReport",
                "summary": "Erase the report and everything it produced; answers once the objects are gone.",
                "security": [{"readKey": []}],
                "parameters": [{"name": "report_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "Erased.",
                            "content": {"application/json": {"schema": {"$ref": _REF + "Erasure"}}}},
                    "401": unauthorized, "403": forbidden,
                    "404": _error("No such report in the key's project."),
                    **_common_errors(),
                },
            }},
            "/api/v1/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "This document.", "security": [],
                "responses": {"200": {"description": "The OpenAPI document.",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_common_errors()},
            }},
            "/health": {"get": {
                "operationId": "health", "summary": "Whether Redis and the database answer; no details.",
                "security": [],
                "responses": {
                    "200": {"description": "Both answer.",
                            "content": {"application/json": {"schema": {"$ref": _REF + "Health"}}}},
                    "503": {"description": "One does not.",
                            "content": {"application/json": {"schema": {"$ref": _REF + "Health"}}}},
                    "408": _common_errors()["408"], "500": _common_errors()["500"],
                },
            }},
        },
    }
