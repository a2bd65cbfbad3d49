"""No EXIF, XMP, ICC or text metadata of the input reaches any output file (issue 17).

Every corpus image in an accepted format that carries metadata (Pillow's ``info``, PNG text
chunks) is processed into both output formats, and both files (full size and thumbnail) are read
back structurally: JPEG segments up to the scan, WebP RIFF chunks and VP8X flags.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import pytest
from jobq_plugin_screenshot import imaging, samples
from jobq_plugin_screenshot.errors import ScreenshotRejected
from jobq_plugin_screenshot.settings import ScreenshotSettings
from PIL import Image

CORPUS = Path("/work/shared/corpora/images")
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
METADATA_KEYS = {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop", "adobe"}


def _carried(path: Path) -> tuple[str, list[str]]:
    """The format and the metadata Pillow finds in a file (none for unreadable files and other formats)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
            if im.format not in MIME:
                return "", []
            found = sorted(k for k in im.info if k in METADATA_KEYS)
            text = getattr(im, "text", None) if im.format == "PNG" else None
            return im.format, found + [f"text:{k}" for k in (text or {})]
    except Exception:  # unreadable: the corpus test covers its refusal
        return "", []


FILES = {str(p.relative_to(CORPUS)): carried for p in sorted(CORPUS.rglob("*"))
         if p.is_file() and p.suffix != ".tsv" and (carried := _carried(p))[1]} if CORPUS.exists() else {}
pytestmark = pytest.mark.skipif(not FILES, reason="shared image corpus not present")


def jpeg_metadata(data: bytes) -> list[str]:
    """Segments before the scan other than JFIF's APP0: APPn (EXIF, XMP, ICC, Adobe...) and COM."""
    assert data[:2] == b"\xff\xd8"
    found, pos = [], 2
    while pos + 4 <= len(data):
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: no metadata segment comes later in our files
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        body = data[pos + 4:pos + 2 + length]
        if marker == 0xFE or (0xE0 <= marker <= 0xEF and not (marker == 0xE0 and body.startswith(b"JFIF\0"))):
            found.append(f"{marker:02X}:{body[:12]!r}")
        pos += 2 + length
    return found


def webp_metadata(data: bytes) -> list[str]:
    """RIFF chunks ICCP, EXIF, XMP (and any unknown one), and the VP8X flags announcing them."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    found, pos = [], 12
    while pos + 8 <= len(data):
        fourcc, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if fourcc == b"VP8X" and data[pos + 8] & 0b00101100:  # ICC, EXIF, XMP flags
            found.append(f"VP8X flags {data[pos + 8]:#04x}")
        elif fourcc not in (b"VP8 ", b"VP8L", b"VP8X", b"ALPH"):
            found.append(fourcc.decode("latin-1"))
        pos += 8 + size + (size & 1)
    return found


def test_the_selection_has_every_kind_of_metadata() -> None:
    kinds = {k.split(":")[0] for _, found in FILES.values() for k in found}
    assert {"exif", "icc_profile", "xmp", "comment", "text"} <= kinds
    for name in ("valid/flower.jpg", "valid/hopper.jpg", "valid/icc_profile.png", "odd/hopper_orientation_6.webp",
                 "hostile/POC_phpinfo-metadata.jpg", "odd/exoplanet_phase_curve_3840x2160.png"):
        assert name in FILES


@pytest.mark.parametrize("output_format", ["webp", "jpeg"])
@pytest.mark.parametrize("name", sorted(FILES))
def test_outputs_carry_no_metadata(name: str, output_format: str) -> None:
    data = (CORPUS / name).read_bytes()
    fmt, carried = FILES[name]
    try:
        out = imaging.process(samples.data_url(data, MIME[fmt]), ScreenshotSettings(output_format=output_format))
    except ScreenshotRejected:
        pytest.skip(f"{name} is refused (the corpus test checks why): no output to inspect")
    for rendition in (out.original, out.thumbnail):
        raw = rendition.data
        found = jpeg_metadata(raw) if output_format == "jpeg" else webp_metadata(raw)
        assert found == [], f"{name} -> {output_format}: {found} (input had {carried})"
        im = Image.open(io.BytesIO(raw))
        assert not im.getexif() and not (set(im.info) & METADATA_KEYS), (name, sorted(im.info))
        for marker in (b"Exif\0\0", b"ICC_PROFILE", b"http://ns.adobe.com/xap", b"<?php", b"xmpmeta"):
            assert marker not in raw, (name, marker)
