"""Synthetic screenshots that look like web UIs, for tests and benchmarks.

Real screenshots are mostly flat colour with sharp text edges, which compress and resample
very differently from photos or noise; measuring on noise would favour the wrong encoder.
"""

from __future__ import annotations

import base64
import io
import random

from PIL import Image, ImageDraw, ImageFont

_WORDS = (
    "dashboard", "settings", "report", "issue", "assigned", "priority", "status", "open", "closed",
    "project", "billing", "deploy", "staging", "production", "error", "warning", "request",
    "timeout", "retry", "queue", "worker", "screenshot", "replay", "upload", "comment", "reply",
    "user", "team", "invite", "search", "filter", "export", "today", "yesterday",
)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError):  # Pillow built without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize()


def _photo(size: tuple[int, int], rng: random.Random) -> Image.Image:
    grad = Image.linear_gradient("L")  # 256x256, so quarter turns keep its size
    grain = Image.frombytes("L", size, rng.randbytes(size[0] * size[1])).point(lambda v: 118 + v // 12)
    channels = [Image.blend(grad.rotate(rng.choice((0, 90, 180, 270))).resize(size), grain, 0.25)
                for _ in range(3)]
    return Image.merge("RGB", channels)


def ui_screenshot(width: int = 1920, height: int = 1080, *, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """A deterministic web-app-like screenshot: nav bar, sidebar, cards, text, buttons, a chart."""
    rng = random.Random(seed)
    scale = max(1.0, width / 1920)
    im = Image.new("RGB", (width, height), (246, 247, 249))
    d = ImageDraw.Draw(im)
    body, small, title = _font(round(14 * scale)), _font(round(12 * scale)), _font(round(20 * scale))
    nav_h, side_w = round(56 * scale), round(240 * scale)

    d.rectangle((0, 0, width, nav_h), fill=(32, 41, 58))
    d.text((round(20 * scale), round(16 * scale)), "jobq console", font=title, fill=(255, 255, 255))
    for i in range(5):
        d.text((round((260 + 110 * i) * scale), round(20 * scale)), rng.choice(_WORDS).title(),
               font=body, fill=(190, 200, 215))
    d.rectangle((0, nav_h, side_w, height), fill=(255, 255, 255))
    d.line((side_w, nav_h, side_w, height), fill=(225, 228, 232), width=1)
    y = nav_h + round(20 * scale)
    while y < height - round(30 * scale):
        if rng.random() < 0.15:
            d.rounded_rectangle((round(10 * scale), y - 6, side_w - round(10 * scale), y + round(24 * scale)),
                                radius=round(6 * scale), fill=(232, 240, 254))
        d.text((round(24 * scale), y), _sentence(rng, 2), font=body, fill=(60, 64, 72))
        y += round(36 * scale)

    x0, y0 = side_w + round(24 * scale), nav_h + round(24 * scale)
    card_w, card_h, gap = round(400 * scale), round(260 * scale), round(24 * scale)
    palette = [(66, 133, 244), (52, 168, 83), (234, 67, 53), (251, 188, 5), (103, 58, 183)]
    cy = y0
    while cy + card_h < height:
        cx = x0
        while cx + card_w < width - gap:
            d.rounded_rectangle((cx, cy, cx + card_w, cy + card_h), radius=round(8 * scale),
                                fill=(255, 255, 255), outline=(222, 226, 230))
            d.text((cx + round(16 * scale), cy + round(14 * scale)), _sentence(rng, 3), font=title,
                   fill=(33, 37, 41))
            ty = cy + round(50 * scale)
            kind = rng.random()
            if kind < 0.35:  # a line chart
                pts, n = [], 24
                level = rng.uniform(0.3, 0.7)
                for k in range(n):
                    level = min(0.95, max(0.05, level + rng.uniform(-0.12, 0.12)))
                    pts.append((cx + round(16 * scale) + k * (card_w - round(32 * scale)) // (n - 1),
                                cy + card_h - round(20 * scale) - int(level * (card_h - round(90 * scale)))))
                d.line(pts, fill=rng.choice(palette), width=max(2, round(2 * scale)))
            elif kind < 0.5:  # a photo-like picture: smooth gradient with grain
                box = (card_w - round(32 * scale), card_h - round(70 * scale))
                im.paste(_photo(box, rng), (cx + round(16 * scale), ty))
            else:  # text rows and a button
                while ty < cy + card_h - round(60 * scale):
                    d.text((cx + round(16 * scale), ty), _sentence(rng, rng.randint(3, 6)), font=body,
                           fill=(73, 80, 87))
                    ty += round(22 * scale)
                bx, by = cx + round(16 * scale), cy + card_h - round(48 * scale)
                colour = rng.choice(palette)
                d.rounded_rectangle((bx, by, bx + round(110 * scale), by + round(32 * scale)),
                                    radius=round(6 * scale), fill=colour)
                d.text((bx + round(14 * scale), by + round(8 * scale)), rng.choice(_WORDS).title(),
                       font=small, fill=(255, 255, 255))
            cx += card_w + gap
        cy += card_h + gap
    return im.convert(mode) if mode != "RGB" else im


def encode(im: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    """Encode ``im`` the way a browser would hand it over (PNG by default)."""
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URL as the browser SDK sends it."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
