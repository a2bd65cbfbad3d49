"""The screenshot plugin's settings, read from ``SCREENSHOT_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

import attrs
from jobq import ConfigError

MAX_BYTES = "SCREENSHOT_MAX_BYTES"
MAX_PIXELS = "SCREENSHOT_MAX_PIXELS"
MAX_ASPECT_RATIO = "SCREENSHOT_MAX_ASPECT_RATIO"
FORMAT = "SCREENSHOT_FORMAT"
QUALITY = "SCREENSHOT_QUALITY"
ENV_NAMES = (MAX_BYTES, MAX_PIXELS, MAX_ASPECT_RATIO, FORMAT, QUALITY)

OUTPUT_FORMATS = ("webp", "jpeg")


def _positive(_inst: object, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class ScreenshotSettings:
    """Limits and output choices; the defaults follow the issue and docs/plugins/screenshot.md.

    :param max_bytes: largest decoded image accepted (the data URL is refused before decoding).
    :param max_pixels: largest width x height accepted, checked on the header before decoding.
    :param max_aspect_ratio: longest side / shortest side; beyond it there is nothing to show.
    :param output_format: ``webp`` (default, half the bytes of JPEG at the same fidelity) or ``jpeg``.
    :param quality: encoder quality of both renditions.
    :param max_side: the optimized image fits within ``max_side`` x ``max_side``.
    :param thumbnail_size: the exact thumbnail size (cover-cropped).
    """

    max_bytes: int = attrs.field(default=20 * 1024 * 1024, validator=_positive)
    max_pixels: int = attrs.field(default=40_000_000, validator=_positive)
    max_aspect_ratio: float = attrs.field(default=100.0, validator=_positive)
    output_format: str = attrs.field(default="webp")
    quality: int = attrs.field(default=85)
    max_side: int = attrs.field(default=2048, validator=_positive)
    thumbnail_size: tuple[int, int] = (320, 240)

    @output_format.validator
    def _check_format(self, _attribute: attrs.Attribute, value: str) -> None:
        if value not in OUTPUT_FORMATS:
            raise ConfigError(f"{FORMAT} must be one of {', '.join(OUTPUT_FORMATS)}, got {value!r}")

    @quality.validator
    def _check_quality(self, _attribute: attrs.Attribute, value: int) -> None:
        if not 1 <= value <= 100:
            raise ConfigError(f"{QUALITY} must be between 1 and 100, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ScreenshotSettings:
        """Settings from ``env`` (default ``os.environ``); unset or empty variables keep defaults."""
        e = os.environ if env is None else env
        return _from_values(tuple(e.get(name) or None for name in ENV_NAMES))


def current() -> ScreenshotSettings:
    """The settings for the current environment, cached until a ``SCREENSHOT_*`` variable changes."""
    return ScreenshotSettings.from_env()


@lru_cache(maxsize=8)
def _from_values(values: tuple[str | None, ...]) -> ScreenshotSettings:
    raw = dict(zip(ENV_NAMES, values, strict=True))
    kwargs: dict[str, object] = {}
    for name, field, kind in ((MAX_BYTES, "max_bytes", int), (MAX_PIXELS, "max_pixels", int),
                              (MAX_ASPECT_RATIO, "max_aspect_ratio", float), (QUALITY, "quality", int)):
        if raw[name] is not None:
            try:
                kwargs[field] = kind(raw[name])
            except ValueError:
                raise ConfigError(f"{name}={raw[name]!r} is not a valid {kind.__name__}") from None
    if raw[FORMAT] is not None:
        kwargs["output_format"] = raw[FORMAT].strip().lower()
    return ScreenshotSettings(**kwargs)  # type: ignore[arg-type]
