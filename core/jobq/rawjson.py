"""JSON that a producer has already checked, carried into a job as the bytes it arrived in.

A large list (a replay's events) costs five to six times its text once parsed into Python objects,
and encoding it back for the job costs a second full pass that holds the GIL. A producer that has
read the text item by item puts :class:`RawJSON` in the job's data instead: the enqueue encoder
splices its bytes in as they are, and a payload class checks it with :meth:`RawJSON.items`, one
item in memory at a time.

:class:`TextWindow` is the reader under both: UTF-8 bytes decoded a window at a time, so a body
of mostly ASCII with one emoji never becomes a string of four bytes per character.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any

WINDOW = 1 << 20
_SPACE = re.compile(r"[ \t\n\r]*")
# A number cut at the window's end may still parse: "-5e" of "-5e-08" as -5. Within this many
# characters of the end, a value is parsed again on a wider window.
_TAIL = 3
_NEAR_END = 8  # the longest token a cut can split and still fail early in: "\\uXXXX", "false"
_AFTER_ITEM = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class RawJSON:
    """One JSON value as UTF-8 bytes, put into a job's data unparsed.

    Only for text the producer has parsed and checked itself (an API that read a request item by
    item, say): the bytes go into the job as they are, so text that is not exactly one JSON value
    would corrupt the job's data. Compared by identity; truthy like any object.
    """

    __slots__ = ("__weakref__", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"RawJSON(<{len(self.data)} bytes>)"

    def items(self, decoder: json.JSONDecoder = _DECODER) -> Iterator[Any]:
        """The items of a JSON array, parsed one at a time.

        :raises ValueError: the bytes are not a JSON array (``json.JSONDecodeError`` for bad syntax).
        """
        window = TextWindow(self.data)
        if window.peek() != "[":
            raise ValueError("not a JSON array")
        yield from window.array_items(decoder)
        if window.peek():
            raise window.error("Extra data")


class TextWindow:
    """A cursor over UTF-8 JSON bytes that keeps only a window of the decoded text.

    :meth:`value` parses the value at the cursor, widening the window (doubling what it reads)
    while the value runs past its end, so a value of any size costs O(its size) to parse.

    :raises UnicodeDecodeError: from any method, when the bytes are not UTF-8.
    """

    def __init__(self, data: bytes | bytearray | memoryview, start: int = 0, window: int | None = None) -> None:
        self._data = memoryview(data)
        self._read = start  # bytes decoded so far
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._chunk = window or WINDOW
        self.text = ""
        self.i = 0
        self._base = start  # byte offset of text[0]

    @property
    def at_end(self) -> bool:
        return self._read >= len(self._data)

    def _widen(self) -> bool:
        """Read more bytes after the window, first dropping what the cursor has passed."""
        if self.at_end:
            return False
        if self.i:
            self._base = self._byte_offset(self.i)
            self.text, self.i = self.text[self.i:], 0
        size = max(self._chunk, len(self.text))
        block = self._data[self._read:self._read + size].tobytes()  # no view left behind to pin the data
        self._read += len(block)
        self.text += self._utf8.decode(block, final=self.at_end)
        return True

    def peek(self) -> str:
        """The next character that is not white space, ``""`` at the end; the cursor moves to it."""
        while True:
            self.i = _SPACE.match(self.text, self.i).end()  # type: ignore[union-attr]
            if self.i < len(self.text) or not self._widen():
                return self.text[self.i:self.i + 1]

    def take(self, char: str, expecting: str) -> None:
        if self.peek() != char:
            raise self.error(expecting)
        self.i += 1

    def value(self, decoder: json.JSONDecoder = _DECODER) -> Any:
        """Parse the value at the cursor and move past it."""
        self.peek()
        while True:
            try:
                value, end = decoder.raw_decode(self.text, self.i)
            except json.JSONDecodeError as exc:
                if self._cut(exc) and self._widen():  # the value may go on in the bytes not yet read
                    continue
                raise self.error_from(exc.msg, exc.pos) from None
            if end + _TAIL < len(self.text) or not self._widen():
                self.i = end
                return value  # else a number may go on in the bytes just read: parse again

    def key(self) -> str:
        """Parse an object's member name at the cursor and the ``:`` after it."""
        if self.peek() != '"':
            raise self.error("Expecting property name enclosed in double quotes")
        while True:
            try:
                name, end = json.decoder.scanstring(self.text, self.i + 1)
                break
            except json.JSONDecodeError as exc:
                if not (self._cut(exc) and self._widen()):
                    raise self.error_from(exc.msg, exc.pos) from None
        self.i = end
        self.take(":", "Expecting ':' delimiter")
        return name

    def _cut(self, exc: json.JSONDecodeError) -> bool:
        """Whether the error may come from the window's end rather than from the data: a string
        still open, or an error within a few characters of the end. Other errors are final, so bad
        input never widens the window to the rest of the data."""
        return exc.pos >= len(self.text) - _NEAR_END or exc.msg.startswith("Unterminated string")

    def array_items(self, decoder: json.JSONDecoder = _DECODER) -> Iterator[Any]:
        """With the cursor on ``[``: yield each item, leaving the cursor after ``]``.

        The loop stays on the window's text while it can (one ``raw_decode`` and one regular
        expression per item); :meth:`value` and :meth:`peek` take over at the window's end.
        """
        self.take("[", "Expecting '['")
        if self.peek() == "]":
            self.i += 1
            return
        raw_decode, after = decoder.raw_decode, _AFTER_ITEM.match
        while True:
            text, i = self.text, self.i
            try:
                value, end = raw_decode(text, i)
            except json.JSONDecodeError:
                end = len(text)
            if end + _TAIL >= len(text):  # the item may go on past the window
                value = self.value(decoder)
                text, end = self.text, self.i
            yield value
            found = after(text, end)
            if found is not None and found.end() < len(text):
                if found.group(1) == "]":
                    self.i = found.start(1) + 1
                    return
                self.i = found.end()
                continue
            self.i = end
            if self.peek() == "]":
                self.i += 1
                return
            self.take(",", "Expecting ',' delimiter")
            self.peek()

    def slice(self, start: int, end: int) -> bytes:
        """A copy of the data's bytes ``start:end`` (offsets from :meth:`offset`)."""
        return bytes(self._data[start:end])

    def release(self) -> None:
        """Let go of the data, so a ``bytearray`` under it can be resized again."""
        self._data.release()

    def offset(self) -> int:
        """The byte offset of the cursor in the data."""
        return self._byte_offset(self.i)

    def _byte_offset(self, pos: int) -> int:
        """The byte offset in the data of the window's character ``pos``."""
        before = self.text[:pos]
        return self._base + (len(before) if before.isascii() else len(before.encode()))

    def error(self, message: str) -> json.JSONDecodeError:
        return self.error_from(message, self.i)

    def error_from(self, message: str, pos: int) -> json.JSONDecodeError:
        """A ``JSONDecodeError`` whose line and column count from the start of the data."""
        head = bytes(self._data[:self._byte_offset(pos)]).decode("utf-8", "replace")
        return json.JSONDecodeError(message, head + self.text[pos:pos + 1], len(head))

