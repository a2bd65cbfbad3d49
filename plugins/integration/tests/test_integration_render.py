"""Report rendering: valid ADF whatever the text, inert user content, vendor length limits."""

from __future__ import annotations

import json
import os
import random
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from jobq_plugin_integration.platform import Report
from jobq_plugin_integration.render import ZWSP, adf, markdown, markdown_text, one_line, slack_blocks
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
    assert "@\u200bteam" in body and "a@\u200bb.c" in body
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


# --- Markdown from untrusted text, checked with a CommonMark renderer ---------------------------------------------
# GitHub and Linear render CommonMark plus GFM's tables, strikethrough and autolinks (scheme URLs, www., e-mail);
# markdown-it-py with linkify (bare domains off, as in GFM) stands in for them.

HOSTILE = [
    "[Reset password](https://evil.example/reset)",
    "![](https://tracker.example/pixel.gif)",
    "<img src=https://tracker.example/p.gif onerror=alert(1)>",
    "<details><summary>open me</summary>hidden</details>",
    "[click](javascript:alert(1)) and <javascript:alert(1)>",
    "`@user with an unmatched backtick",
    "&#64;user &commat;user &#x40;team",
    "ping @org/team and @user, mail me at a@b.example",
    "see https://evil.example/x and www.evil.example and <https://evil.example/auto>",
    "fixes #12 and GH-13",
    "# heading\n## another\n> quote\n- item\n* item\n+ item\n1. one\n2) two",
    "---\n***\n___\nsetext\n===\nunder\n---",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "```\ncode\n```\n~~~\nmore\n~~~\n    indented code",
    "*em* _em_ **strong** ~~gone~~ $x^2$ \\* backslash\\",
    "[ref]: https://evil.example/ref\n[ref]",
    "<!-- jobq-forged-marker -->",
    ":smile: :+1: at 10:30:45",
    "line one\nline two\r\nline three\rline four\n\n\nnew paragraph\n\t- tabbed",
    "- [ ] task\n- [x] done",
    "> [!WARNING]\n> alert block",
]


def _gfm() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["linkify", "table", "strikethrough"])
    md.linkify.set({"fuzzy_link": False})
    return md


class _Text(HTMLParser):
    """The visible text of rendered HTML (``<br>`` as a newline, paragraphs apart) and its tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.parts and self.parts[-1] in ("\n", "\n\n") and data.startswith("\n"):
            data = data[1:]  # the renderer's own line end after <br /> or </p>
        self.parts.append(data.replace("\n", " "))  # a soft break shows as a space


def _render(markdown_source: str) -> _Text:
    parser = _Text()
    parser.feed(_gfm().render(markdown_source))
    parser.close()
    return parser


def _as_written(text: str) -> str:
    """What a reader should see: the text's lines, blank-line runs as one paragraph break."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n[ \t]*\n(?:[ \t]*\n)*", text.strip("\n"))
    return "\n\n".join("\n".join(_untab(x.rstrip()) for x in p.split("\n") if x.strip()) for p in paragraphs
                       if p.strip())


def _untab(line: str) -> str:
    """A tab in the indentation shows as four spaces."""
    body = line.lstrip(" \t")
    return line[: len(line) - len(body)].replace("\t", "    ") + body


def _seen(rendered: _Text) -> str:
    text = "".join(rendered.parts).replace(ZWSP, "").replace("\u00a0", " ")
    return re.sub(r"\n\n+", "\n\n", "\n".join(x.rstrip() for x in text.split("\n"))).strip("\n")


def _assert_inert(rendered: _Text) -> None:
    tags = {t for t, _ in rendered.tags}
    assert tags <= {"p", "br"}, f"live Markdown: {sorted(tags - {'p', 'br'})}"
    visible = "".join(rendered.parts)
    assert not re.search(r"@[A-Za-z0-9]", visible), "a mention would notify"
    assert not re.search(r"(?i)#\d|gh-\d|https?://|www\.", visible), "an issue reference or URL would link"


@pytest.mark.parametrize("text", HOSTILE)
def test_report_text_renders_as_written_and_inert(text: str) -> None:
    rendered = _render(markdown_text(text))
    _assert_inert(rendered)
    assert _seen(rendered) == _as_written(text)


def test_random_markdown_soup_renders_as_written_and_inert() -> None:
    alphabet = [*"\\`*_[]()<>&#|~$!@:/.-+=0123456789ab \t\n\"'{};^%?,", "www.", "http://", "&#64;", "@u", "<img>",
                "\r\n", "    "]
    rng = random.Random(14)
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        rendered = _render(markdown_text(text))
        _assert_inert(rendered)
        assert _seen(rendered) == _as_written(text), repr(text)


def test_only_validated_report_urls_are_links() -> None:
    body = markdown(report(description="\n".join(HOSTILE), url="https://app.example/page?q=1",
                           screenshot_url="https://cdn.example/s.png", replay_url="javascript:alert(1)"),
                    marker="jobq-abc", limit=65536)
    rendered = _render(body)
    links = [a.get("href") for t, a in rendered.tags if t == "a"]
    assert links == ["https://app.example/page?q=1", "https://cdn.example/s.png"]
    assert {t for t, _ in rendered.tags} <= {"p", "br", "a", "strong", "hr", "sub"}
    assert body.count("<!--") == 1 and body.endswith("<!-- jobq-abc -->")


def test_a_page_url_that_is_not_http_is_shown_not_linked() -> None:
    rendered = _render(markdown(report(url="javascript:alert(1)//[x](y)"), marker=None, limit=65536))
    assert [t for t, _ in rendered.tags if t in ("a", "code")] == []
    assert "Page: javascript:alert(1)//[x](y)" in _seen(rendered)


def test_markdown_fits_the_limit_even_when_escaping_doubles_the_text() -> None:
    body = markdown(report(description="*_" * 50_000), marker="jobq-abc", limit=65536)
    assert len(body) <= 65536 and body.endswith("<!-- jobq-abc -->")
    seen = _seen(_render(body))
    assert "*_*_" in seen and "… (truncated)" in seen
