"""A nesting guard run on the raw bytes before the streaming parser sees them.

ijson's C backend keeps, for every open container, the dotted path from the root as a new
string, so the memory for one deeply nested event grows with depth times path length: 20,000
levels of ``[`` take about 1 GB, 100,000 levels get the worker killed, and long object keys at
each level make it worse (measured, docs/plugins/replay.md). The guard tracks, block by block,
the nesting depth outside strings and the length of object keys, and refuses the payload before
the parser reaches the hostile part. Worst case it then allows: ``max_depth`` levels each under
a key of ``MAX_KEY_BYTES``, about ``max_depth**2 * MAX_KEY_BYTES / 2`` bytes of paths (67 MB at the
defaults), against a few kilobytes for real recordings (depth under 50, keys under 40 bytes).

It works with whole-block byte operations (``translate``, ``replace``, ``count``, one regular
expression) rather than a loop per character: 0.45-0.6 s per 58 MB of rrweb JSON, against 1-1.7 s
for ijson itself.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate

from .errors import ERR_INVALID_REPLAY, ERR_NESTING_TOO_DEEP, ReplayRejected

MAX_KEY_BYTES = 512
_WS = b" \t\r\n"
_KEEP = b'[]{}"'
_DROP_ALL_BUT_STRUCTURE = bytes(c for c in range(256) if c not in _KEEP)
_DROP_ALL_BUT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_STEP = bytearray(range(256))
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = 255  # -1 once read as a signed byte
_STEP_TABLE = bytes(_STEP)
_LONG_KEY = re.compile(rb'"[^"]{%d,}"[ \t\r\n]*:' % MAX_KEY_BYTES)


class NestingGuard:
    """Feed it the payload's bytes in order; it raises :class:`ReplayRejected` on hostile nesting.

    :param max_depth: deepest nesting of arrays and objects allowed, the root object counting 1.
    """

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self.depth = 0
        self.deepest = 0
        self._in_string = False
        self._open_len = 0  # bytes of the string still open at the end of the last block
        self._await_colon = False  # a long string just closed: a ':' next would make it a key
        self._carry = b""  # trailing backslashes whose escape ends in the next block

    def feed(self, block: bytes, final: bool = False) -> None:
        data = self._carry + block if self._carry else block
        self._carry = b""
        if not final and data.endswith(b"\\"):
            kept = data.rstrip(b"\\")
            self._carry = data[len(kept):]
            data = kept
        # An escaped quote or backslash is two bytes standing for one character inside a
        # string; blank them so every remaining quote opens or closes a string.
        if b"\\\\" in data:
            data = data.replace(b"\\\\", b"__")
        if b'\\"' in data:
            data = data.replace(b'\\"', b"__")
        if data:
            self._check_keys(data)
            self._track_depth(data)

    def _check_keys(self, data: bytes) -> None:
        start = 0
        if self._await_colon:
            rest = data.lstrip(_WS)
            if not rest:
                return
            self._await_colon = False
            if rest[:1] == b":":
                self._refuse_key()
        if self._in_string:
            close = data.find(b'"')
            if close < 0:
                self._open_len += len(data)
                return
            if self._open_len + close >= MAX_KEY_BYTES:
                rest = data[close + 1:].lstrip(_WS)
                if not rest:
                    self._await_colon = True
                elif rest[:1] == b":":
                    self._refuse_key()
            start = close + 1
        pos = start
        while (m := _LONG_KEY.search(data, pos)) is not None:
            # A match may start at a closing quote and span unquoted text; only a match whose
            # first quote opens a string (an even number of quotes before it) is a key.
            if data.count(b'"', start, m.start()) % 2 == 0:
                self._refuse_key()
            pos = m.start() + 1
        last = data.rfind(b'"')
        quotes = data.count(b'"', start)
        if quotes % 2:  # the block ends inside a string opened at ``last``
            self._open_len = len(data) - last - 1
            return
        self._open_len = 0
        if quotes and not data[last + 1:].strip(_WS):
            # The block ends just after a string: a long one followed by ':' in the next block is a key.
            opening = data.rfind(b'"', start, last)
            if last - opening - 1 >= MAX_KEY_BYTES:
                self._await_colon = True

    def _track_depth(self, data: bytes) -> None:
        structure = data.translate(None, _DROP_ALL_BUT_STRUCTURE)
        quotes = structure.count(b'"')
        if quotes or self._in_string:
            if self._in_string:
                structure = b'"' + structure
            # Adjacent quotes delimit strings holding no bracket: dropping a pair keeps every
            # later quote's role, and leaves quotes only around the rare strings with brackets.
            structure = structure.replace(b'""', b"")
            if b'"' in structure:
                structure = b"".join(structure.split(b'"')[0::2])
            if quotes % 2:
                self._in_string = not self._in_string
        brackets = structure.translate(None, _DROP_ALL_BUT_BRACKETS)
        if not brackets:
            return
        steps = array("b", brackets.translate(_STEP_TABLE))
        deepest = max(accumulate(steps, initial=self.depth))
        self.depth += len(brackets) - 2 * (brackets.count(b"]") + brackets.count(b"}"))
        if deepest > self.deepest:
            self.deepest = deepest
            if deepest > self.max_depth:
                raise ReplayRejected(ERR_NESTING_TOO_DEEP,
                                     f"the payload nests deeper than REPLAY_MAX_DEPTH={self.max_depth} levels")

    def _refuse_key(self) -> None:
        raise ReplayRejected(ERR_INVALID_REPLAY, f"the payload has an object key longer than {MAX_KEY_BYTES} bytes")
