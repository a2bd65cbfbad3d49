"""Every file of the shared image corpus: a good output or a clean, classified refusal.

The MIME type is what a client would claim: the real one for PNG/JPEG/WebP bytes, ``image/png``
for everything else (the hostile case: TIFF, BMP, ICO... sent as a PNG).
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from jobq_plugin_screenshot import imaging, samples
from jobq_plugin_screenshot.errors import ScreenshotRejected
from jobq_plugin_screenshot.settings import ScreenshotSettings
from PIL import Image

CORPUS = Path("/work/shared/corpora/images")
ALLOWED = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FILES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file() and p.name != "MANIFEST.tsv")
CODES = {"ERR_INVALID_IMAGE", "ERR_DECOMPRESSION_BOMB", "ERR_IMAGE_DIMENSIONS", "ERR_MIME_MISMATCH"}
# Files whose manifest row (probed on another build) says "ok" but whose trailing chunk this
# Pillow refuses in load_end: refusing them is as correct as decoding them.
EITHER = {"hostile/broken_data_stream.png", "hostile/truncated_end_chunk.png"}


def _manifest() -> dict[str, dict[str, str]]:
    with (CORPUS / "MANIFEST.tsv").open(newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh, delimiter="\t")}


MANIFEST = _manifest() if CORPUS.exists() else {}
pytestmark = pytest.mark.skipif(not FILES, reason="shared image corpus not present")


def sniff(data: bytes) -> str | None:
    for fmt, test in imaging._MAGIC.items():
        if test(data[:16]):
            return fmt
    return None


def expectation(name: str, fmt: str | None) -> str:
    """``ok``, ``either`` (ok or ERR_INVALID_IMAGE) or the reason code the file must get."""
    row = MANIFEST[name]
    probe = row["pillow_open_load"] + " " + row["pillow_warnings"]
    if fmt is None:
        return "ERR_INVALID_IMAGE"  # not an accepted format: refused at open, no other decoder runs
    if "DecompressionBomb" in probe or "MAX_TEXT_CHUNK" in probe:
        return "ERR_DECOMPRESSION_BOMB"
    if not row["pillow_open_load"].startswith("ok"):
        return "ERR_INVALID_IMAGE"
    if name in EITHER or name.startswith("hostile/"):
        return "either"
    return "ok"


def test_every_corpus_file_is_listed_in_the_manifest() -> None:
    assert len(FILES) > 250
    assert set(FILES) == set(MANIFEST)


@pytest.mark.parametrize("name", FILES)
def test_corpus_file(name: str) -> None:
    cfg = ScreenshotSettings()
    data = (CORPUS / name).read_bytes()
    fmt = sniff(data)
    url = samples.data_url(data, ALLOWED.get(fmt or "", "image/png"))
    expected = expectation(name, fmt)
    started = time.perf_counter()
    try:
        out = imaging.process(url, cfg)
    except ScreenshotRejected as exc:
        assert expected != "ok", f"{name}: refused with {exc.code}: {exc}"
        assert exc.code in CODES and exc.retryable is False
        if expected != "either":
            assert exc.code == expected, f"{name}: {exc.code}: {exc}"
        else:
            assert exc.code == "ERR_INVALID_IMAGE", f"{name}: {exc.code}: {exc}"
        message = str(exc)
        assert message and len(message) < 300 and "\\x" not in message and "0x" not in message
        body = url.partition(",")[2]
        assert not any(body[i:i + 12] in message for i in range(0, max(1, len(body) - 12), 7))
    else:
        assert expected in ("ok", "either"), f"{name}: processed but expected {expected}"
        row = MANIFEST[name]
        original = Image.open(io.BytesIO(out.original.data))
        thumb = Image.open(io.BytesIO(out.thumbnail.data))
        original.load()
        thumb.load()
        assert original.format == thumb.format == "WEBP"
        assert thumb.size == (320, 240) and max(original.size) <= 2048
        assert original.size == (out.original.width, out.original.height)
        w, h = int(row["width"]), int(row["height"])
        assert (out.source_width, out.source_height) == (w, h)
        if row["exif_orientation"] in {"5", "6", "7", "8"}:
            w, h = h, w
        if max(w, h) <= 2048:
            assert original.size == (w, h)
        else:
            assert abs(original.width / original.height - w / h) < 0.02 * w / h
        assert not original.getexif() and "icc_profile" not in original.info
    assert time.perf_counter() - started < 2.0
