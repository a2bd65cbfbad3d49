"""Every validation regex of the shipped packages is a full match: ``^…$`` with ``re.match`` lets a
trailing newline through (queue ``screenshots\\n``, job id ``ok\\n``)."""

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
