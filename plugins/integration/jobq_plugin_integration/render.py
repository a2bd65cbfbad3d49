"""Turn a report into each vendor's text format: Markdown, Atlassian Document Format, Slack mrkdwn.

Report text comes from end users, so rendering neutralises what would act on the tracker rather
than display: Slack's ``<!channel>``/``<@U…>`` pings, GitHub ``@mention`` notifications, and
HTML comments (where jobq hides its own marker). Links are only ever built from validated
http(s) URLs.
"""

from __future__ import annotations

import re
from typing import Any

from .platform import Report

TRUNCATED = "… (truncated)"
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_LINK = re.compile(r"https?://[^\s<>\"`]+", re.IGNORECASE)


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

def markdown_text(text: str, *, mentions: bool) -> str:
    """User text made inert: HTML comments opened as text, ``@name`` pings broken (GitHub)."""
    text = text.replace("<!--", "&lt;!--")
    if not mentions:
        text = _MENTION.sub("@\u200b", text)
    return text


def markdown(report: Report, *, marker: str | None, limit: int, mentions: bool = False) -> str:
    """The issue body; ``marker`` is appended as an HTML comment that renders as nothing."""
    lines = []
    for label, text, link in facts(report):
        if link:
            value = f"<{link}>"
        elif label == "Page":  # a URL we will not link (not http/https): shown as code, inert
            value = "`" + text.replace("`", "'") + "`"
        else:
            value = markdown_text(text, mentions=mentions)
        lines.append(f"**{label}:** {value}")
    head = "  \n".join(lines)
    tail = f"\n\n---\n<sub>{footer(report)}</sub>"
    if marker:
        tail += f"\n<!-- {marker} -->"
    room = limit - len(head) - len(tail) - 2
    body = clip(markdown_text(report.description.strip(), mentions=mentions), max(room, 0))
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
