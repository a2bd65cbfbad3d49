"""imaging.py: data-URL checks, decoding guards, renditions."""

from __future__ import annotations

import io
import sys
import time

import attrs
import pytest
from jobq import UnrecoverableError
from jobq_plugin_screenshot import imaging, samples
from jobq_plugin_screenshot.errors import ScreenshotRejected
from jobq_plugin_screenshot.settings import ScreenshotSettings
from PIL import EpsImagePlugin, Image, ImageChops, ImageOps, ImageStat


def reject(value: object, cfg: ScreenshotSettings) -> ScreenshotRejected:
    with pytest.raises(ScreenshotRejected) as info:
        imaging.process(value, cfg)
    assert isinstance(info.value, UnrecoverableError) and info.value.retryable is False
    return info.value


def on_white(im: Image.Image) -> Image.Image:
    """Composite on white: lossy WebP may change the colour under fully transparent pixels."""
    rgba = im.convert("RGBA")
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(page, rgba).convert("RGB")


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(on_white(a), on_white(b))).mean) / 3


# --- the data URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "code"), [
    (None, "ERR_INVALID_DATA_URL"),
    (b"data:image/png;base64,AAAA", "ERR_INVALID_DATA_URL"),
    ("https://example.com/shot.png", "ERR_INVALID_DATA_URL"),
    ("image/png;base64,iVBORw0KGgo=", "ERR_INVALID_DATA_URL"),
    ("data:image/png,%89PNG", "ERR_INVALID_DATA_URL"),
    ("data:image/png;base64" + "A" * 200, "ERR_INVALID_DATA_URL"),
    ("data:;base64,iVBORw0KGgo=", "ERR_UNSUPPORTED_MIME"),
    ("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", "ERR_UNSUPPORTED_MIME"),
    ("data:image/tiff;base64,SUkqAA==", "ERR_UNSUPPORTED_MIME"),
    ("data:image/gif;base64,R0lGODlh", "ERR_UNSUPPORTED_MIME"),
    ("data:text/html;base64,PGh0bWw+", "ERR_UNSUPPORTED_MIME"),
    ("data:image/png;base64,iVBO@@@@", "ERR_INVALID_BASE64"),
    ("data:image/png;base64,iVBORw0KGgo", "ERR_INVALID_BASE64"),  # padding missing
    ("data:image/png;base64,iVBO Rw0K", "ERR_INVALID_BASE64"),  # whitespace
    ("data:image/png;base64,iVBO-w0_", "ERR_INVALID_BASE64"),  # url-safe alphabet
    ("data:image/png;base64,iVBORé==", "ERR_INVALID_BASE64"),
    ("data:image/png;base64,", "ERR_INVALID_IMAGE"),
    ("data:image/png;base64," + samples.data_url(b"just some text").partition(",")[2], "ERR_INVALID_IMAGE"),
])
def test_bad_data_urls_are_classified(value: object, code: str, cfg: ScreenshotSettings, tools) -> None:
    exc = reject(value, cfg)
    assert exc.code == code
    if isinstance(value, str):
        tools.assert_clean_message(exc, value)


def test_unsupported_mime_is_named_only_when_well_formed(cfg: ScreenshotSettings) -> None:
    assert "image/bmp" in str(reject("data:image/bmp;base64,Qk0=", cfg))
    weird = "data:<script>x</script>;base64,Qk0="
    assert "script" not in str(reject(weird, cfg))


def test_header_is_case_insensitive_and_may_carry_parameters(cfg: ScreenshotSettings, tools) -> None:
    data = tools.encode(Image.new("RGB", (40, 30), "red"))
    body = tools.to_url(data).partition(",")[2]
    for header in ("DATA:IMAGE/PNG;BASE64,", "data:image/png;name=shot.png;base64,"):
        assert imaging.process(header + body, cfg).original.width == 40


def test_oversized_payload_is_refused_before_decoding(tools) -> None:
    cfg = ScreenshotSettings(max_bytes=1000)
    ok = tools.to_url(tools.encode(Image.new("RGB", (8, 8), "blue")))
    assert imaging.parse_data_url(ok, cfg.max_bytes).format == "PNG"
    huge = "data:image/png;base64," + "A" * 50_000_000  # not even valid PNG: refused on length alone
    started = time.perf_counter()
    exc = reject(huge, cfg)
    assert exc.code == "ERR_PAYLOAD_TOO_LARGE" and "SCREENSHOT_MAX_BYTES" in str(exc)
    assert time.perf_counter() - started < 0.5
    exact = "data:image/png;base64," + "A" * imaging.max_base64_chars(1000)
    assert imaging.parse_data_url(exact, 1000).start == len("data:image/png;base64,")
    assert reject(exact + "AAAA", cfg).code == "ERR_PAYLOAD_TOO_LARGE"


def test_bytes_of_another_accepted_format_are_a_mime_mismatch(cfg: ScreenshotSettings, tools) -> None:
    png = tools.encode(Image.new("RGB", (20, 20), "green"))
    exc = reject(tools.to_url(png, "image/jpeg"), cfg)
    assert exc.code == "ERR_MIME_MISMATCH" and "PNG" in str(exc) and "image/jpeg" in str(exc)
    webp = tools.encode(Image.new("RGB", (20, 20), "green"), "WEBP")
    assert reject(tools.to_url(webp, "image/png"), cfg).code == "ERR_MIME_MISMATCH"


# --- format confusion and hostile decoders -----------------------------------------------------


def test_other_formats_never_reach_their_decoders(cfg: ScreenshotSettings, tools, monkeypatch) -> None:
    called: list[object] = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: called.append(a))
    im = Image.new("RGB", (32, 32), "red")
    for fmt in ("EPS", "TIFF", "PDF", "BMP", "GIF", "ICO", "PPM"):
        data = tools.encode(im, fmt)
        for mime in ("image/png", "image/jpeg", "image/webp"):
            exc = reject(tools.to_url(data, mime), cfg)
            assert exc.code == "ERR_INVALID_IMAGE", (fmt, mime)
    assert called == []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_images_fail_cleanly(fmt: str, keep: float, cfg: ScreenshotSettings, tools) -> None:
    data = tools.encode(samples.ui_screenshot(640, 400, seed=2), fmt)
    url = tools.to_url(data[:int(len(data) * keep)], f"image/{fmt.lower()}")
    exc = reject(url, cfg)
    assert exc.code == "ERR_INVALID_IMAGE"
    tools.assert_clean_message(exc, url)


def test_pixel_flood_png_is_refused_on_its_header(cfg: ScreenshotSettings, tools) -> None:
    started = time.perf_counter()
    exc = reject(tools.to_url(tools.png_header_only(20_000, 50_000)), cfg)
    assert exc.code == "ERR_DECOMPRESSION_BOMB"
    assert time.perf_counter() - started < 0.5


def test_pixel_limit_applies_below_pillows_own(cfg: ScreenshotSettings, tools) -> None:
    # 48 Mpx: Pillow would not even warn (89 Mpx); the plugin's own limit refuses it before load.
    exc = reject(tools.to_url(tools.jpeg_with_size(8000, 6000), "image/jpeg"), cfg)
    assert exc.code == "ERR_DECOMPRESSION_BOMB"
    assert "8000x6000" in str(exc) and "SCREENSHOT_MAX_PIXELS" in str(exc)


def test_decompression_bomb_warning_is_an_error(tools) -> None:
    # With the plugin's own limit out of the way, Pillow's warning (89-179 Mpx) must still refuse it.
    lax = ScreenshotSettings(max_pixels=10**12, max_aspect_ratio=10**6)
    assert Image.MAX_IMAGE_PIXELS is not None
    exc = reject(tools.to_url(tools.png_header_only(10_000, 10_000)), lax)
    assert exc.code == "ERR_DECOMPRESSION_BOMB"
    exc = reject(tools.to_url(tools.png_header_only(20_000, 20_000)), lax)  # over Pillow's error limit
    assert exc.code == "ERR_DECOMPRESSION_BOMB"


def test_text_chunk_bomb(cfg: ScreenshotSettings, tools) -> None:
    data = (tools.corpus / "hostile/png_decompression_dos.png").read_bytes()
    assert reject(tools.to_url(data), cfg).code == "ERR_DECOMPRESSION_BOMB"


@pytest.mark.parametrize(("size", "code"), [((10_000, 1), "ERR_IMAGE_DIMENSIONS"), ((1, 5000), "ERR_IMAGE_DIMENSIONS"),
                                            ((0, 10), "ERR_IMAGE_DIMENSIONS")])
def test_absurd_aspect_ratios_are_refused(size: tuple[int, int], code: str, cfg, tools) -> None:
    data = tools.png_header_only(*size) if 0 in size else tools.encode(Image.new("L", size, 128))
    assert reject(tools.to_url(data), cfg).code in (code, "ERR_INVALID_IMAGE" if 0 in size else code)


def test_aspect_ratio_at_the_limit_is_processed(cfg: ScreenshotSettings, tools) -> None:
    out = imaging.process(tools.to_url(tools.encode(Image.new("RGB", (3000, 30), "navy"))), cfg)
    assert (out.original.width, out.original.height) == (2048, 20)
    assert (out.thumbnail.width, out.thumbnail.height) == (320, 240)


# --- what comes out ---------------------------------------------------------------------------


def test_canvas_screenshot_keeps_its_size_and_loses_the_dead_alpha(cfg, ui_png: bytes, tools) -> None:
    out = imaging.process(tools.to_url(ui_png), cfg)
    original, thumb = tools.decode_output(out.original.data), tools.decode_output(out.thumbnail.data)
    assert original.format == "WEBP" and original.mode == "RGB" and original.size == (1920, 1080)
    assert thumb.format == "WEBP" and thumb.size == (320, 240)
    assert (out.original.width, out.original.height, out.source_width, out.source_height) == (1920, 1080) * 2
    assert mean_diff(original, Image.open(io.BytesIO(ui_png))) < 3
    assert len(out.original.data) < len(ui_png) / 2


@pytest.mark.parametrize(("corner", "alpha", "mode"), [
    ((0, 0), 255, "RGB"),  # opaque everywhere: the alpha is dropped
    ((0, 0), 254, "RGBA"),  # one pixel in the first corner barely see-through: kept
    ((639, 479), 0, "RGBA"),  # the last pixel fully transparent: kept
])
def test_alpha_is_dropped_only_when_every_pixel_is_opaque(corner, alpha, mode, cfg, tools) -> None:
    im = Image.new("RGBA", (640, 480), (40, 80, 120, 255))
    im.putpixel(corner, (40, 80, 120, alpha))
    out = imaging.process(tools.to_url(tools.encode(im)), cfg)
    assert tools.decode_output(out.original.data).mode == mode


@pytest.mark.parametrize(("size", "expected"), [
    ((3840, 2160), (1920, 1080)),  # integer reduce: keeps 94 % of the exact fit, pixel-exact for 2x
    ((2560, 1440), (2048, 1152)),  # 1.25x: resampled to the exact fit
    ((1000, 5000), (410, 2048)),
    ((6000, 1000), (2000, 334)),  # 2.93x: an integer reduce by 3 keeps 98 % of the exact fit
    ((2048, 2048), (2048, 2048)),
    ((300, 200), (300, 200)),
])
def test_optimized_image_fits_within_2048(size, expected, cfg: ScreenshotSettings, tools) -> None:
    out = imaging.process(tools.to_url(tools.encode(Image.new("RGB", size, (30, 90, 160)))), cfg)
    assert (out.original.width, out.original.height) == expected
    assert tools.decode_output(out.original.data).size == expected


def test_thumbnail_covers_the_box_trimming_sides_equally(cfg: ScreenshotSettings, tools) -> None:
    im = Image.new("RGB", (1920, 1080), "white")
    im.paste((255, 0, 0), (0, 0, 230, 1080))  # inside the 240 px each side that a 4:3 crop drops
    im.paste((0, 0, 255), (1690, 0, 1920, 1080))
    im.paste((0, 160, 0), (900, 500, 1020, 580))  # centre mark
    thumb = tools.decode_output(imaging.process(tools.to_url(tools.encode(im)), cfg).thumbnail.data).convert("RGB")
    assert thumb.size == (320, 240)
    r, g, b = thumb.getpixel((1, 120))
    assert r > 200 and g > 200 and b > 200  # no red band left
    r, g, b = thumb.getpixel((318, 120))
    assert r > 200 and g > 200 and b > 200
    r, g, b = thumb.getpixel((160, 120))
    assert g > 100 and r < 80


def test_thumbnail_of_a_tall_capture_keeps_the_top(cfg: ScreenshotSettings, tools) -> None:
    im = Image.new("RGB", (1280, 6000), "white")
    im.paste((0, 0, 200), (0, 0, 1280, 200))  # page header
    im.paste((0, 160, 0), (0, 1000, 1280, 6000))  # below the first 960 px (4:3 of the width)
    thumb = tools.decode_output(imaging.process(tools.to_url(tools.encode(im)), cfg).thumbnail.data).convert("RGB")
    assert thumb.getpixel((160, 5))[2] > 150
    assert all(min(thumb.getpixel((x, 235))) > 200 for x in (10, 160, 310))  # white, no green


def test_small_images_are_thumbnailed_to_the_exact_box(cfg: ScreenshotSettings, tools) -> None:
    out = imaging.process(tools.to_url(tools.encode(Image.new("RGB", (1, 1), "red"))), cfg)
    assert (out.original.width, out.original.height) == (1, 1)
    assert tools.decode_output(out.thumbnail.data).size == (320, 240)


@pytest.mark.parametrize(("orientation", "size", "corner"), [
    (1, (400, 200), (255, 0, 0)), (3, (400, 200), (0, 0, 255)),
    (6, (200, 400), (255, 0, 0)),  # turn 90° clockwise: the left edge goes on top
    (8, (200, 400), (0, 0, 255)),
])
def test_exif_orientation_is_applied(orientation: int, size, corner, cfg, tools) -> None:
    im = Image.new("RGB", (400, 200), (255, 0, 0))
    im.paste((0, 0, 255), (200, 0, 400, 200))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = tools.encode(im, "JPEG", exif=exif.tobytes())
    out = imaging.process(tools.to_url(data, "image/jpeg"), cfg)
    shown = tools.decode_output(out.original.data).convert("RGB")
    assert shown.size == size
    pixel = shown.getpixel((5, 5))
    assert all(abs(a - b) < 40 for a, b in zip(pixel, corner, strict=True)), pixel
    assert mean_diff(shown, ImageOps.exif_transpose(Image.open(io.BytesIO(data)))) < 4  # Pillow agrees
    assert not shown.getexif()


def test_metadata_is_stripped(cfg: ScreenshotSettings, tools) -> None:
    poc = (tools.corpus / "hostile/POC_phpinfo-metadata.jpg").read_bytes()
    assert b"phpinfo" in poc
    for fmt in ("webp", "jpeg"):
        out = imaging.process(tools.to_url(poc, "image/jpeg"), attrs.evolve(cfg, output_format=fmt))
        for rendition in (out.original, out.thumbnail):
            assert b"phpinfo" not in rendition.data and b"Exif" not in rendition.data
            shown = tools.decode_output(rendition.data)
            assert not shown.getexif() and "icc_profile" not in shown.info and "xmp" not in shown.info


def test_embedded_colour_profile_is_converted_to_srgb(cfg: ScreenshotSettings, tools) -> None:
    profile = tools.swapped_rgb_profile()
    im = Image.new("RGB", (64, 48), (255, 0, 0))  # red in that profile is sRGB blue
    out = imaging.process(tools.to_url(tools.encode(im, "PNG", icc_profile=profile)), cfg)
    r, g, b = tools.decode_output(out.original.data).convert("RGB").getpixel((10, 10))
    assert b > 200 and r < 60, (r, g, b)
    assert b"swapped" not in out.original.data


def test_broken_or_srgb_profiles_leave_pixels_alone(cfg: ScreenshotSettings, tools) -> None:
    broken = (tools.corpus / "hostile/broken_iccp.png").read_bytes()
    out = imaging.process(tools.to_url(broken), cfg)
    assert mean_diff(tools.decode_output(out.original.data), Image.open(io.BytesIO(broken))) < 4
    exo = Image.open(tools.corpus / "odd/exoplanet_phase_curve_3840x2160.png")
    assert "icc_profile" in exo.info


def test_cmyk_jpeg_becomes_rgb(cfg: ScreenshotSettings, tools) -> None:
    data = (tools.corpus / "odd/pil_sample_cmyk.jpg").read_bytes()
    out = imaging.process(tools.to_url(data, "image/jpeg"), cfg)
    shown = tools.decode_output(out.original.data)
    assert shown.mode == "RGB"
    assert mean_diff(shown, Image.open(io.BytesIO(data)).convert("RGB")) < 10  # lossy on a 100 px photo


def test_sixteen_bit_grey_is_scaled_not_clipped(cfg: ScreenshotSettings, tools) -> None:
    im = Image.new("I;16", (256, 8))
    im.putdata([x * 256 + 128 for x in range(256)] * 8)  # a full-range ramp
    shown = tools.decode_output(imaging.process(tools.to_url(tools.encode(im)), cfg).original.data).convert("L")
    assert abs(shown.getpixel((64, 4)) - 64) <= 6 and abs(shown.getpixel((200, 4)) - 200) <= 6


def test_sixteen_bit_transparency_key_becomes_alpha(cfg: ScreenshotSettings, tools) -> None:
    data = (tools.corpus / "valid/pngsuite/tbwn0g16.png").read_bytes()
    src = Image.open(io.BytesIO(data))
    shown = tools.decode_output(imaging.process(tools.to_url(data), cfg).original.data)
    assert src.mode == "I;16" and shown.mode == "RGBA"
    lo, hi = shown.getchannel("A").getextrema()
    assert lo == 0 and hi == 255


@pytest.mark.parametrize("name", ["valid/p_trns_single.png", "valid/transparent.png", "valid/transparent.webp"])
def test_transparency_is_kept_in_webp_and_flattened_on_white_in_jpeg(name: str, cfg, tools) -> None:
    data = (tools.corpus / name).read_bytes()
    mime = "image/webp" if name.endswith(".webp") else "image/png"
    webp = tools.decode_output(imaging.process(tools.to_url(data, mime), cfg).original.data)
    assert webp.mode == "RGBA" and webp.getchannel("A").getextrema()[0] == 0
    jpeg = imaging.process(tools.to_url(data, mime), attrs.evolve(cfg, output_format="jpeg"))
    shown = tools.decode_output(jpeg.original.data)
    assert shown.format == "JPEG" and shown.mode == "RGB" and jpeg.original.ext == "jpg"
    clear = Image.open(io.BytesIO(data)).convert("RGBA").getchannel("A").point(lambda a: 255 if a == 0 else 0)
    assert min(ImageStat.Stat(shown, mask=clear).mean) > 235  # transparent pixels show a white page


@pytest.mark.parametrize("name", ["odd/iss634.webp", "odd/iss634.apng", "odd/apng_basic_f20.png"])
def test_animations_give_their_first_frame(name: str, cfg: ScreenshotSettings, tools) -> None:
    data = (tools.corpus / name).read_bytes()
    mime = "image/webp" if name.endswith(".webp") else "image/png"
    first = Image.open(io.BytesIO(data))
    first.seek(0)
    first = first.convert("RGBA")
    out = tools.decode_output(imaging.process(tools.to_url(data, mime), cfg).original.data).convert("RGBA")
    assert out.size == first.size
    assert mean_diff(out, first) < 6


def test_jpeg_draft_decodes_big_photos_at_reduced_scale(cfg: ScreenshotSettings, tools) -> None:
    im = samples.ui_screenshot(4400, 3000, seed=4)
    data = tools.encode(im, "JPEG", quality=90)
    source = imaging.load_image(imaging.decode_data_url(tools.to_url(data, "image/jpeg"), cfg.max_bytes), cfg)
    assert source.image.size == (2200, 1500) and (source.width, source.height) == (4400, 3000)
    _, original = imaging.optimize(source, cfg)
    assert (original.width, original.height) == (2048, 1396)


def test_settings_come_from_the_environment(monkeypatch) -> None:
    from jobq import ConfigError
    from jobq_plugin_screenshot import settings

    monkeypatch.setenv("SCREENSHOT_MAX_BYTES", "1234")
    monkeypatch.setenv("SCREENSHOT_FORMAT", "JPEG")
    s = settings.current()
    assert (s.max_bytes, s.output_format, s.quality) == (1234, "jpeg", 85)
    monkeypatch.setenv("SCREENSHOT_FORMAT", "gif")
    with pytest.raises(ConfigError):
        settings.current()
    monkeypatch.setenv("SCREENSHOT_FORMAT", "webp")
    monkeypatch.setenv("SCREENSHOT_QUALITY", "eighty")
    with pytest.raises(ConfigError):
        settings.current()


_STEADY_FAULTS = """
import json, resource, sys
from PIL import Image
from jobq_plugin_screenshot import imaging, samples, settings
url = samples.data_url(samples.encode(samples.ui_screenshot(1920, 1080, seed=3, mode="RGBA")))
if sys.argv[1] == "keep":
    imaging.reuse_image_memory()
cfg = settings.current()
for _ in range(2):
    imaging.process(url, cfg)  # the first jobs map the memory the next ones may reuse
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
imaging.process(url, cfg)
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
                  "blocks_max": Image.core.get_blocks_max()}))
"""


def _steady_state(mode: str, **env: str) -> dict:
    import json
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items() if k != "PILLOW_BLOCKS_MAX"}
    out = subprocess.run([sys.executable, "-c", _STEADY_FAULTS, mode], env={**clean, **env},
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page-fault counts and glibc are Linux's")
def test_a_handler_process_reuses_its_image_memory_from_job_to_job() -> None:
    # A fresh process per case: the allocator settings are process-wide. Giving the memory back
    # costs ~6,800 page faults per 1080p job; kept, the next job maps (almost) nothing new.
    kept = _steady_state("keep")
    assert kept["blocks_max"] == imaging.BLOCKS_MAX and kept["faults"] < 1000
    assert _steady_state("keep", PILLOW_BLOCKS_MAX="1")["blocks_max"] == 1  # Pillow's own setting wins
