"""The OpenAPI document: valid OpenAPI 3.1, and a live ``jobq api`` fuzzed against it by schemathesis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from jobq_bugreports.openapi import openapi_document
from openapi_spec_validator import validate

pytestmark = pytest.mark.timeout(120)

INGEST = "fuzz-ingest-0123456789abcdef"
READ = "fuzz-read-0123456789abcdef"
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))


def test_document_is_valid_openapi_3_1() -> None:
    doc = openapi_document(4096)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    ops = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert ops == {("/api/v1/reports", "post"), ("/api/v1/reports/{report_id}", "get"),
                   ("/api/v1/reports/{report_id}", "delete"),
                   ("/api/v1/openapi.json", "get"), ("/health", "get")}
    for (path, method) in ops:
        for status, response in doc["paths"][path][method]["responses"].items():
            if status.startswith(("4", "5")) and path != "/health":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schemathesis_against_a_live_api(api_process, jobq_settings, tmp_path: Path) -> None:
    """No 5xx, no status, header, content type or body outside the document, no hung request."""
    env = {**os.environ, "JOBQ_API_KEYS": f"fuzz:{INGEST}", "JOBQ_API_READ_KEYS": f"fuzz:{READ}",
           "DATABASE_URL": f"sqlite:///{tmp_path}/r.db", "REDIS_URL": jobq_settings.redis_url,
           "JOBQ_PREFIX": jobq_settings.prefix, "STORAGE_URL": str(tmp_path / "storage"),
           "JOBQ_API_MAX_BODY": "65536", "JOBQ_DISABLE_PLUGINS": "screenshot,replay,integration,notification"}
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'[auth.openapi.ingestKey]\napi_key = "{INGEST}"\n'
                      f'[auth.openapi.readKey]\napi_key = "{READ}"\n')
    with api_process(env) as (_proc, base, lines):
        served = httpx.get(f"{base}/api/v1/openapi.json", timeout=10)
        assert served.status_code == 200
        validate(served.json())
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "run", f"{base}/api/v1/openapi.json",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_headers_conformance,response_schema_conformance",
             "--max-examples", "10", "--request-timeout", "10", "--seed", "14", "--workers", "2",
             "--phases", "examples,coverage,fuzzing", "--generation-database", "none", "--no-color"],
            capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Traceback" not in "".join(lines)
