"""Structure a platform's ``credentials``/``config`` dict into its attrs class, strictly.

The core converter is lenient on scalars (``5`` becomes ``"5"``) and reports validator errors
against the whole payload; platform settings deserve exact types and messages naming the wire
field (``config.siteUrl: must be an http(s) URL``). Messages never quote the value: it may be a token.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from typing import Any

import attrs

from .errors import InvalidField


class FieldError(ValueError):
    """Raised by a validator: ``reason`` is appended to the field's wire path by :func:`structure`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _wire(field: attrs.Attribute) -> str:
    return field.metadata.get("wire") or camel(field.name)


def _check_type(value: Any, annotation: Any) -> str | None:
    """A reason when ``value`` does not fit ``annotation`` (str, int, float, bool, optional of those)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        candidates = [a for a in args if a is not type(None)]
    else:
        candidates = [annotation]
    for kind in candidates:
        if kind is Any or kind is object:
            return None
        if kind is bool and isinstance(value, bool):
            return None
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and (kind is float or (kind is int and isinstance(value, int))):
            return None
        if kind is str and isinstance(value, str):
            return None
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return "must be " + " or ".join(names.get(k, getattr(k, "__name__", str(k))) for k in candidates)


def structure(cls: type, data: Any, where: str) -> Any:
    """Build ``cls`` from the wire dict ``data``; raise :class:`InvalidField` naming ``where.field``."""
    if not isinstance(data, dict):
        raise InvalidField(where, "must be a JSON object")
    attrs.resolve_types(cls)
    fields = {_wire(f): f for f in attrs.fields(cls) if f.init}
    unknown = sorted(k for k in data if k not in fields)
    if unknown:
        raise InvalidField(f"{where}.{unknown[0]}", f"unknown field (expected: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for wire, field in fields.items():
        value = data.get(wire)
        if value is None:
            if field.default is attrs.NOTHING:
                raise InvalidField(f"{where}.{wire}", "required")
            continue
        reason = _check_type(value, field.type)
        if reason:
            raise InvalidField(f"{where}.{wire}", reason)
        kwargs[field.name] = value
    try:
        return cls(**kwargs)
    except FieldError as exc:
        # attrs validators run in definition order, so the first failing one is the one reported
        name = getattr(exc, "field_name", None)
        path = f"{where}.{_wire(attrs.fields_dict(cls)[name])}" if name else where
        raise InvalidField(path, exc.reason) from None


Validator = Callable[[Any, attrs.Attribute, Any], None]


def _validator(check: Callable[[Any], str | None]) -> Validator:
    def run(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        reason = check(value)
        if reason:
            err = FieldError(reason)
            err.field_name = attribute.name  # type: ignore[attr-defined]
            raise err

    return run


def non_empty(max_len: int = 4096) -> Validator:
    def check(v: str) -> str | None:
        if not v.strip():
            return "must not be empty"
        if len(v) > max_len:
            return f"must be at most {max_len} characters"
        if any(ord(c) < 32 for c in v):
            return "must not contain control characters"
        return None

    return _validator(check)


def in_range(above: float, at_most: float) -> Validator:
    """A number more than ``above`` and at most ``at_most``."""
    words = f"must be more than {above:g} and at most {at_most:g}"
    return _validator(lambda v: None if above < v <= at_most else words)


def pattern(regex: str, description: str) -> Validator:
    compiled = re.compile(regex)
    return _validator(lambda v: None if compiled.fullmatch(v) else f"must be {description}")


def api_url() -> Validator:
    """An absolute http(s) URL without credentials, query or fragment (a base the client appends to)."""

    def check(v: str) -> str | None:
        m = re.fullmatch(r"(https?)://([^/?#@\s]+)(/[^?#\s]*)?", v)
        if not m or len(v) > 2048:
            if re.match(r"https?://[^/?#]*@", v):
                return "must not carry credentials before the host (put them in credentials)"
            return "must be an absolute http(s) URL without query or fragment"
        return None

    return _validator(check)


def link_url(max_len: int = 4096) -> Validator:
    """A link shown in an issue: http(s) only, so no ``javascript:`` reaches a tracker."""
    rx = re.compile(r"https?://[^\s<>\"`]+", re.IGNORECASE)
    return _validator(lambda v: None if rx.fullmatch(v) and len(v) <= max_len
                      else "must be an absolute http(s) URL without spaces or <>\"`")


def secret(*, validator: Validator | None = None) -> Any:
    """An attrs field for a credential: required, non-empty, and never shown by ``repr``."""
    checks = [non_empty(8192)] + ([validator] if validator else [])
    return attrs.field(repr=lambda _v: "'[redacted]'", validator=checks)
