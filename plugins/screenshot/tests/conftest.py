"""Helpers for the screenshot plugin's tests: data URLs, crafted headers, a non-sRGB profile."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from jobq_plugin_screenshot import samples
from jobq_plugin_screenshot.errors import ScreenshotRejected
from jobq_plugin_screenshot.settings import ScreenshotSettings
from PIL import Image

CORPUS = Path("/work/shared/corpora/images")


@pytest.fixture
def cfg() -> ScreenshotSettings:
    return ScreenshotSettings()


@pytest.fixture(scope="session")
def ui_png() -> bytes:
    """A 1920x1080 UI capture as a browser canvas exports it: RGBA PNG, fully opaque."""
    return samples.encode(samples.ui_screenshot(1920, 1080, seed=7, mode="RGBA"))


def to_url(data: bytes, mime: str = "image/png") -> str:
    return samples.data_url(data, mime)


def encode(im: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    return samples.encode(im, fmt, **params)


def decode_output(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def assert_clean_message(exc: ScreenshotRejected, url: str) -> None:
    """The failure names the problem without quoting any of the payload."""
    message = str(exc)
    assert message and len(message) < 300
    body = url.partition(",")[2]
    for i in range(0, max(0, len(body) - 12), max(1, len(body) // 64)):
        assert body[i:i + 12] not in message
    assert "\\x" not in message and "0x" not in message


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int, colour_type: int = 0) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` with one tiny IDAT: a pixel-flood bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF header is patched to claim ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (64, 64), (200, 30, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def swapped_rgb_profile() -> bytes:
    """A valid ICC v2 matrix/TRC display profile whose red and blue primaries are swapped.

    Pure red in this profile is sRGB blue, so converting to sRGB must visibly move colours.
    """
    r, g, b = (0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141)
    xyz = lambda v: b"XYZ \0\0\0\0" + b"".join(_s15(c) for c in v)  # noqa: E731
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(2.2 * 256)) + b"\0\0"
    name = b"swapped primaries test profile\0"
    desc = (b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + struct.pack(">II", 0, 0)
            + struct.pack(">HB", 0, 0) + b"\0" * 67)
    desc += b"\0" * (-len(desc) % 4)
    tags = [(b"desc", desc), (b"wtpt", xyz((0.9642, 1.0, 0.8249))), (b"rXYZ", xyz(b)), (b"gXYZ", xyz(g)),
            (b"bXYZ", xyz(r)), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, blob = b"", b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(blob), len(body))
        blob += body
    size = offset + len(blob)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + blob


@pytest.fixture(scope="session")
def tools() -> SimpleNamespace:
    """The helpers above, for test modules (importlib mode cannot import conftest by name)."""
    return SimpleNamespace(
        to_url=to_url, encode=encode, decode_output=decode_output, assert_clean_message=assert_clean_message,
        png_header_only=png_header_only, jpeg_with_size=jpeg_with_size, swapped_rgb_profile=swapped_rgb_profile,
        corpus=CORPUS,
    )
