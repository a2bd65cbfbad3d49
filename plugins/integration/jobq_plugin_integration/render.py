"""Turn a report into each vendor's text format: Markdown, Atlassian Document Format, Slack mrkdwn.

Report text comes from end users, so rendering shows it as written and neutralises whatever would
act on the tracker rather than display: Slack's ``<!channel>``/``<@U…>`` pings; in Markdown every
construct (links, images, raw HTML, code, headings, lists, tables), ``@mention`` notifications,
issue references and autolinked URLs. Links are only ever built from validated http(s) URLs.
"""

from __future__ import annotations

import re
from typing import Any

from .platform import Report

TRUNCATED = "… (truncated)"
_LINK = re.compile(r"https?://[^\s<>\"`]+", re.IGNORECASE)
ZWSP = "\u200b"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


def one_line(text: str, limit: int) -> str:
    """A title: whitespace runs (newlines included) collapsed, then clipped."""
    return clip(" ".join(text.split()), limit)


def safe_link(url: str | None) -> str | None:
    """``url`` if it is a plain http(s) URL (values from the store were not validated at enqueue)."""
    return url if url and _LINK.fullmatch(url) else None


def facts(report: Report) -> list[tuple[str, str, str | None]]:
    """(label, text, link) rows shown above the description."""
    rows: list[tuple[str, str, str | None]] = [("Severity", report.severity, None)]
    if report.url:
        link = safe_link(report.url)
        rows.append(("Page", report.url, link))
    for label, url in (("Screenshot", report.screenshot_url), ("Session replay", report.replay_url)):
        link = safe_link(url)
        if link:
            rows.append((label, "open", link))
    return rows


def footer(report: Report) -> str:
    return f"Synced by jobq from bug report {report.bug_report_id} (project {report.project_id})."


# --- Markdown (GitHub, Linear) ---------------------------------------------------------------

# Backslash-escaped anywhere: they open emphasis, code, links, images, raw HTML, entities, tables,
# strikethrough, math and headings. CommonMark shows an escaped punctuation character as itself.
_MD_SPECIAL = re.compile(r"[\\`*_\[\]<>&#|~$]")
# Escaped at the start of a line only: list items, setext underlines, thematic breaks, ordered lists.
_LINE_START = re.compile(r"\A([-+=]|\d{1,9}(?=[.)]))")
# A zero-width space keeps these from turning into notifications or links, invisibly: @mentions and
# e-mail autolinks, URL autolinks (scheme://, www.), issue references (#12, GH-12), :emoji: codes.
_INERT = re.compile(r"@|:(?=//)|(?i:www)(?=\.)|(?<=\\#)(?=\d)|(?i:gh-)(?=\d)|:(?=[a-z0-9_+-]+:)")


def _escape(m: re.Match[str]) -> str:
    # Angle brackets as entities, so the raw body never holds "<!--" (a planted marker)
    return {"<": "&lt;", ">": "&gt;"}.get(m.group(0)) or "\\" + m.group(0)


def _line(line: str) -> str:
    stripped = line.lstrip(" \t")
    indent = line[: len(line) - len(stripped)]
    text = _MD_SPECIAL.sub(_escape, stripped.rstrip())
    m = _LINE_START.match(text)
    if m:
        end = m.end()
        text = (text[:end] + "\\" + text[end:]) if m.group(0)[0].isdigit() else "\\" + text
    text = _INERT.sub(lambda m: m.group(0) + ZWSP, text)
    # Four spaces would start a code block and renderers trim a paragraph's first line: leading
    # whitespace becomes no-break space entities, shown alike.
    return indent.replace("\t", "    ").replace(" ", "&nbsp;") + text


def markdown_text(text: str) -> str:
    """User text as Markdown that renders exactly as written, with no live construct in it.

    Lines keep their breaks (a hard break each) and blank lines separate paragraphs.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n[ \t]*\n(?:[ \t]*\n)*", text.strip("\n"))
    out = []
    for para in paragraphs:
        lines = [_line(x) for x in para.split("\n")]
        out.append("  \n".join(lines))
    return "\n\n".join(x for x in out if x)


def _fitted(text: str, room: int) -> str:
    """``markdown_text(text)`` in at most ``room`` characters, the text cut (saying so) if needed."""
    cut = min(len(text), room)
    while cut > 0:
        out = markdown_text(clip(text, cut))
        if len(out) <= room:
            return out
        cut = min(cut - 1, cut * room // len(out))
    return ""


def markdown(report: Report, *, marker: str | None, limit: int) -> str:
    """The issue body; ``marker`` is appended as an HTML comment that renders as nothing."""
    lines = []
    for label, text, link in facts(report):
        # not linked: shown as written (a Page URL that is not http/https included)
        value = f"<{link}>" if link else markdown_text(" ".join(text.split()))
        lines.append(f"**{label}:** {value}")
    head = "  \n".join(lines)
    tail = f"\n\n---\n<sub>{footer(report)}</sub>"
    if marker:
        tail += f"\n<!-- {marker} -->"
    room = limit - len(head) - len(tail) - 2
    body = _fitted(report.description.strip(), max(room, 0))
    return head + ("\n\n" + body if body else "") + tail


# --- Atlassian Document Format (Jira) --------------------------------------------------------

def _text(text: str, link: str | None = None, strong: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text}
    marks = []
    if strong:
        marks.append({"type": "strong"})
    if link:
        marks.append({"type": "link", "attrs": {"href": link}})
    if marks:
        node["marks"] = marks
    return node


def _paragraph(inline: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "paragraph", "content": inline} if inline else {"type": "paragraph"}


def adf(report: Report, *, limit: int = 30000) -> dict[str, Any]:
    """An ADF ``doc``: a facts paragraph, the description's paragraphs, a footer rule.

    Text nodes must not be empty (the ADF schema says ``minLength: 1``), so blank lines separate
    paragraphs and single newlines become ``hardBreak`` nodes.
    """
    content: list[dict[str, Any]] = []
    inline: list[dict[str, Any]] = []
    for label, text, link in facts(report):
        if inline:
            inline.append({"type": "hardBreak"})
        inline.append(_text(f"{label}: ", strong=True))
        inline.append(_text(text, link))
    content.append(_paragraph(inline))
    description = clip(report.description.strip(), limit)
    for block in re.split(r"\n\s*\n", description):
        if not block.strip():
            continue
        para: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                para.append({"type": "hardBreak"})
            if line:
                para.append(_text(line))
        content.append(_paragraph(para))
    content.append({"type": "rule"})
    content.append(_paragraph([_text(footer(report))]))
    return {"type": "doc", "version": 1, "content": content}


# --- Slack Block Kit -------------------------------------------------------------------------

def slack_escape(text: str) -> str:
    """Slack's three control characters; escaping them turns ``<!channel>`` into plain text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    href = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{href}|{slack_escape(label)}>"


def slack_blocks(report: Report, *, marker: str) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks). The header block's ``block_id`` is the marker a retry looks for."""
    title = one_line(report.title, 150)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": marker, "text": {"type": "plain_text", "text": title}},
    ]
    description = report.description.strip()
    if description:
        blocks.append({"type": "section",
                       "text": {"type": "mrkdwn", "text": clip(slack_escape(description), 2900)}})
    elements = []
    for label, text, link in facts(report):
        shown = slack_link(link, text) if link else slack_escape(text)
        elements.append({"type": "mrkdwn", "text": f"*{label}:* {shown}"})
    elements.append({"type": "mrkdwn", "text": slack_escape(footer(report))})
    blocks.append({"type": "context", "elements": elements[:10]})
    fallback = clip(f"[{report.severity}] {' '.join(report.title.split())}", 3000)
    return slack_escape(fallback), blocks
