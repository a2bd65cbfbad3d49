"""Every validation regex of the shipped packages is a full match: ``^…$`` with ``re.match`` lets a
trailing newline through (queue ``screenshots\\n``, job id ``ok\\n``), and a pattern written for
``fullmatch`` (no anchors) used with ``.match`` checks a prefix only."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("core/jobq/**/*.py"), *ROOT.glob("libs/*/jobq_*/**/*.py"), *ROOT.glob("plugins/*/jobq_*/**/*.py")]
# a pattern literal ending in "$" (not "\$"), the anchor that also matches before a final newline
DOLLAR_ANCHOR = re.compile(r"""re\.(?:compile|match|search|fullmatch)\(\s*r?f?["'][^"'\n]*(?<!\\)\$["']""")


def test_the_scan_sees_the_sources() -> None:
    assert len(SOURCES) > 50
    assert DOLLAR_ANCHOR.search('X = re.compile(r"^[a-z]+$")') and not DOLLAR_ANCHOR.search(r'X = re.compile(r"\$")')


def test_no_pattern_is_anchored_with_a_dollar() -> None:
    found = [f"{p.relative_to(ROOT)}:{n}" for p in SOURCES
             for n, line in enumerate(p.read_text().splitlines(), 1) if DOLLAR_ANCHOR.search(line)]
    assert found == [], "use .fullmatch() (or \\A…\\Z) instead of ^…$"


UNANCHORED = re.compile(r"""\b([A-Za-z_][A-Za-z0-9_]*)\s*=\s*re\.compile\(\s*r?f?(["'])(?!\^|\\A)""")


def test_full_match_patterns_are_never_used_as_prefixes() -> None:
    """``.match(text)`` on an unanchored pattern needs a comment saying the prefix is meant (scanners
    that pass a position, ``.match(text, pos)``, are prefix matches by nature)."""
    names = {m.group(1) for p in SOURCES for m in UNANCHORED.finditer(p.read_text())}
    assert {"JOB_ID", "QUEUE_NAME", "SAFE_PART"} <= names
    uses = re.compile(rf"\b({'|'.join(sorted(names))})\.match\([^,()]*\)")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in SOURCES
             for n, line in enumerate(p.read_text().splitlines(), 1) if uses.search(line) and "prefix" not in line]
    assert found == [], "use .fullmatch()"


def test_shared_name_patterns_are_only_fullmatched() -> None:
    """QUEUE_NAME and JOB_ID carry no anchors: ``.match`` would accept any string they prefix."""
    found = [f"{p.relative_to(ROOT)}:{n}" for p in SOURCES
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\b(QUEUE_NAME|JOB_ID|SCHEDULE_NAME)\.(match|search)\(", line)]
    assert found == []
