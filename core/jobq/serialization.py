"""The one cattrs converter for payloads: camelCase JSON on the wire, snake_case attrs fields.

Unknown keys are refused, and every structuring error becomes :class:`InvalidPayload` whose
message names the field by its wire name (``data.bugReportId: ...``). cattrs is imported on first
use, so a worker whose queues have no payload class never loads it (idle RSS).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import attrs

from .errors import InvalidPayload


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _snake_to_camel_in(text: str) -> str:
    return re.sub(r"'([a-z][a-z0-9]*(?:_[a-z0-9]+)+)'", lambda m: f"'{camel(m.group(1))}'", text)


def _strict(kind: type) -> Any:
    """JSON scalars are taken as they are: ``7`` is not a string, ``"7"`` not a number, ``1`` not a bool."""
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}

    def check(value: Any, _type: Any) -> Any:
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not ok:
            raise TypeError(f"expected {names[kind]}, got {type(value).__name__}")
        return value

    return check


@cache
def get_converter() -> Any:
    """The payload converter (built once)."""
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    conv = cattrs.Converter(forbid_extra_keys=True)
    for kind in (str, int, float, bool):
        conv.register_structure_hook(kind, _strict(kind))

    def structure_factory(cl: type) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cl)}
        return make_dict_structure_fn(cl, conv, _cattrs_forbid_extra_keys=True, **renames)

    def unstructure_factory(cl: type) -> Any:
        renames = {a.name: override(rename=camel(a.name)) for a in attrs.fields(cl)}
        return make_dict_unstructure_fn(cl, conv, **renames)

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


def __getattr__(name: str) -> Any:
    if name == "converter":
        return get_converter()
    raise AttributeError(name)


def _format(exc: BaseException, type_: Any) -> str:
    import cattrs

    if isinstance(exc, ValueError | TypeError) and str(exc) and not isinstance(exc, cattrs.BaseValidationError):
        if "extra fields" in str(exc):
            return cattrs.v.format_exception(exc, type_)
        text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        return _snake_to_camel_in(text)
    return cattrs.v.format_exception(exc, type_)


def _camel_path(message: str) -> str:
    text, sep, path = message.rpartition(" @ ")
    if not sep:
        return message
    return f"{text} @ " + ".".join(camel(p) if not p.startswith("[") else p for p in path.split("."))


def _first_code(exc: BaseException) -> str | None:
    """The reason code a validator attached to its error (``ERR_UNSUPPORTED_MIME``...), if any."""
    import cattrs

    code = getattr(exc, "code", None)
    if isinstance(code, str) and code.startswith("ERR_") and not isinstance(exc, cattrs.BaseValidationError):
        return code
    for sub in getattr(exc, "exceptions", ()):
        found = _first_code(sub)
        if found:
            return found
    return None


def structure_payload(data: Any, cls: type) -> Any:
    """Structure wire JSON into ``cls``; raise :class:`InvalidPayload` naming each bad field."""
    if attrs.has(cls) and not isinstance(data, dict):
        raise InvalidPayload(f"invalid payload: expected a JSON object, got {type(data).__name__}")
    import cattrs

    try:
        return get_converter().structure(data, cls)
    except cattrs.BaseValidationError as exc:
        errors = [_camel_path(m) for m in cattrs.transform_error(exc, path="data", format_exception=_format)]
        err = InvalidPayload("invalid payload: " + "; ".join(errors), errors)
        code = _first_code(exc)
        if code:
            err.code = code
        raise err from None
    except (ValueError, TypeError) as exc:
        msg = _snake_to_camel_in(str(exc))
        raise InvalidPayload(f"invalid payload: {msg}", [msg]) from None


def unstructure_payload(obj: Any) -> Any:
    return get_converter().unstructure(obj)
