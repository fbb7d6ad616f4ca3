"""The fields of every protocol message, and how a decoded JSON value is checked against them.

Theory of operation
-------------------
A message (messages.py) is a frozen dataclass; its type hints are its wire schema. At
import, each message's fields are read once into tables that protocol.py's encoder and
decoder use on every frame: the field types (FIELDS), the one `bytes` field that travels
raw after the meta (DATA_FIELD), the fields a frame must carry (REQUIRED), and for every
other field a converter (CONVERTERS) that gives a JSON value as the declared type or
raises WrongType, which the decoder turns into a RemoteProtocolError naming the field.
A peer's value is never trusted to have the right type: a string where a number belongs
must fail here, not deep inside a handler.
"""

from __future__ import annotations

import dataclasses
import typing

from myyoutube.messages import MESSAGE_TYPES


def _field_types(cls: type) -> dict[str, typing.Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


FIELDS: dict[type, dict[str, typing.Any]] = {cls: _field_types(cls) for cls in MESSAGE_TYPES.values()}


def _data_field(cls: type) -> str | None:
    names = [name for name, kind in FIELDS[cls].items() if kind is bytes]
    assert len(names) <= 1, f"{cls.__name__} has more than one bytes field"
    return names[0] if names else None


DATA_FIELD: dict[type, str | None] = {cls: _data_field(cls) for cls in MESSAGE_TYPES.values()}

# Fields a frame must carry: those without a default. A field added to a message later
# goes last with a default, so a frame from a peer that predates it still decodes.
REQUIRED: dict[type, frozenset[str]] = {
    cls: frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    for cls in MESSAGE_TYPES.values()
}


class WrongType(Exception):
    """A JSON value is not the type its field declares."""


# What JSON decoding may give for each plain field type. json.loads makes exactly these
# types, so `type(value) in ...` is the check, and a JSON true (a bool) never passes as an
# int: bool is a subclass of int, but not the same type.
_JSON_TYPES: dict[type, tuple[type, ...]] = {float: (int, float)}


def _converter(kind: typing.Any) -> typing.Callable[[object], object]:
    """A function giving a decoded JSON value as the declared `kind`, or raising
    WrongType. `list[X]` checks every element; `tuple[X, Y]` is a JSON array of exactly
    those types, handed on as a tuple (so a message decodes equal to the one encoded).
    Block reports hold up to REPORT_CHUNK_ENTRIES pairs, so the common shapes are checked
    without a function call per element."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        return _tuple_converter([_converter(arg) for arg in args], args)
    if origin is list:
        return _list_converter(_converter(args[0]), args[0])
    allowed = _JSON_TYPES.get(kind, (kind,))

    def convert_plain(value: object) -> object:
        if type(value) not in allowed:
            raise WrongType
        return value

    return convert_plain


def _tuple_converter(
    items: list[typing.Callable[[object], object]], args: tuple
) -> typing.Callable[[object], object]:
    plain = [_JSON_TYPES.get(arg, (arg,)) for arg in args] if all(isinstance(a, type) for a in args) else None

    def convert_tuple(value: object) -> object:
        if type(value) is not list or len(value) != len(items):
            raise WrongType
        if plain is not None:
            for element, allowed in zip(value, plain, strict=True):
                if type(element) not in allowed:
                    raise WrongType
            return tuple(value)
        return tuple([convert(element) for convert, element in zip(items, value, strict=True)])

    return convert_tuple


def _list_converter(
    item: typing.Callable[[object], object], arg: typing.Any
) -> typing.Callable[[object], object]:
    allowed = _JSON_TYPES.get(arg, (arg,)) if isinstance(arg, type) else None

    def convert_list(value: object) -> object:
        if type(value) is not list:
            raise WrongType
        if allowed is not None:
            for element in value:
                if type(element) not in allowed:
                    raise WrongType
            return value
        return [item(element) for element in value]

    return convert_list


CONVERTERS: dict[type, dict[str, typing.Callable[[object], object]]] = {
    cls: {name: _converter(kind) for name, kind in fields.items() if kind is not bytes}
    for cls, fields in FIELDS.items()
}
