"""Report rendering: valid ADF whatever the text, inert user content, vendor length limits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from jobq_plugin_integration.platform import Report
from jobq_plugin_integration.render import adf, markdown, one_line, slack_blocks
from jsonschema import Draft4Validator

SPECS = Path(os.environ.get("JOBQ_SPECS_DIR", "/work/shared/specs"))
ADF = Draft4Validator(json.loads((SPECS / "jira/adf-schema-v1-full.json").read_text()))


def report(**over: object) -> Report:
    values: dict[str, object] = {"bug_report_id": "b1", "project_id": "p1", "title": "T"}
    values.update(over)
    return Report(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("description", ["", "one line", "a\n\n\n\nb", "\n\nx\n\n", "line\n\nline two\nthree",
                                         "x" * 40000, "  \n \t\n"])
def test_adf_is_valid_for_any_description(description: str) -> None:
    doc = adf(report(description=description, url="https://a.example/p", replay_url="https://r.example/1"))
    errors = [e.message for e in ADF.iter_errors(doc)]
    assert not errors, errors
    assert len(json.dumps(doc)) < 40000


def test_adf_does_not_link_unsafe_urls() -> None:
    doc = json.dumps(adf(report(url="javascript:alert(1)", screenshot_url="data:text/html,x")))
    assert '"href": "javascript' not in doc and "data:text" not in doc
    assert "javascript:alert(1)" in doc  # still shown, as text


def test_markdown_neutralises_mentions_and_comments() -> None:
    body = markdown(report(description="ping @team and mail a@b.c <!-- jobq-x -->"), marker="jobq-abc",
                    limit=65536)
    assert "@\u200bteam" in body and "a@b.c" in body
    assert body.count("<!--") == 1 and body.endswith("<!-- jobq-abc -->")


def test_markdown_respects_the_limit_and_keeps_the_marker() -> None:
    body = markdown(report(description="y" * 100_000), marker="jobq-abc", limit=65536)
    assert len(body) <= 65536 and "(truncated)" in body and body.endswith("<!-- jobq-abc -->")


def test_slack_blocks_escape_and_limit() -> None:
    text, blocks = slack_blocks(report(title="t" * 300, description="<!here> " + "z" * 5000), marker="jobq-m")
    assert blocks[0]["block_id"] == "jobq-m" and len(blocks[0]["text"]["text"]) <= 150
    assert blocks[1]["text"]["text"].startswith("&lt;!here&gt;") and len(blocks[1]["text"]["text"]) <= 3000
    assert "<!here>" not in json.dumps(blocks) and text.startswith("[medium] ")


def test_titles_are_single_lines() -> None:
    assert one_line("a\nb\t c", 255) == "a b c"
    assert len(one_line("w " * 400, 255)) == 255
