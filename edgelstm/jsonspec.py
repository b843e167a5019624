"""Strict conversion between frozen dataclasses and JSON: the manifest's and the reports' reader.

Unknown, missing and wrongly typed fields are refused with a :class:`~edgelstm.errors.BundleError`
that names the field. Supported field types: the dataclasses themselves, ``StrEnum``, ``int``,
``float``, ``str``, ``bool``, ``X | None``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``,
``dict[str, X]`` (values converted as X) and ``Any``. Standard library only.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgelstm.errors import BundleError

FIX = "re-export the bundle with `edgelstm export`"


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, StrEnum):
        return str(obj)
    if isinstance(obj, (tuple, list)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _bad(where: str, source: str | Path, got: Any, expected: str) -> BundleError:
    return BundleError(f"field '{where}' is {json.dumps(got)[:80]} ({type(got).__name__})",
                       expected=expected, fix=FIX, path=source)


def from_jsonable(tp: Any, data: Any, *, where: str, source: str | Path) -> Any:
    """Rebuild ``tp`` from JSON data, rejecting missing, unknown and wrongly typed fields."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _from_union(tp, data, where=where, source=source)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _from_dataclass(tp, data, where=where, source=source)
    if origin is tuple:
        return _from_tuple(tp, data, where=where, source=source)
    if origin is dict or tp is dict:
        return _from_dict(tp, data, where=where, source=source)
    return _from_scalar(tp, data, where=where, source=source)


def _from_union(tp: Any, data: Any, *, where: str, source: str | Path) -> Any:
    args = typing.get_args(tp)
    if data is None and type(None) in args:
        return None
    candidates = [a for a in args if a is not type(None)]
    if len(candidates) == 1:  # X | None: X's own error names the field that is wrong
        return from_jsonable(candidates[0], data, where=where, source=source)
    for arg in candidates:
        try:
            return from_jsonable(arg, data, where=where, source=source)
        except BundleError:
            continue
    raise _bad(where, source, data, " or ".join(_type_name(a) for a in args))


def _from_dataclass(tp: type, data: Any, *, where: str, source: str | Path) -> Any:
    if not isinstance(data, dict):
        raise _bad(where, source, data, f"an object ({tp.__name__})")
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BundleError(f"unknown field '{where}.{unknown[0]}'",
                          expected="only " + ", ".join(fields),
                          fix="remove the field, or upgrade edgelstm if a newer version wrote it", path=source)
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BundleError(f"missing field '{where}.{name}'", expected=f"a {_type_name(hints[name])}",
                                  fix=FIX, path=source)
            continue
        kwargs[name] = from_jsonable(hints[name], data[name], where=f"{where}.{name}", source=source)
    return tp(**kwargs)


def _from_tuple(tp: Any, data: Any, *, where: str, source: str | Path) -> tuple[Any, ...]:
    args = typing.get_args(tp)
    if not isinstance(data, list):
        raise _bad(where, source, data, "a list")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(from_jsonable(args[0], x, where=f"{where}[{i}]", source=source) for i, x in enumerate(data))
    if len(data) != len(args):
        raise _bad(where, source, data, f"a list of {len(args)}")
    return tuple(from_jsonable(a, x, where=f"{where}[{i}]", source=source)
                 for i, (a, x) in enumerate(zip(args, data)))


def _from_dict(tp: Any, data: Any, *, where: str, source: str | Path) -> Any:
    args = typing.get_args(tp)
    if not isinstance(data, dict):
        raise _bad(where, source, data, "an object")
    if len(args) == 2 and args[1] is not Any:
        return {str(k): from_jsonable(args[1], v, where=f"{where}.{k}", source=source) for k, v in data.items()}
    return data


def _from_scalar(tp: Any, data: Any, *, where: str, source: str | Path) -> Any:
    """A leaf: a StrEnum, Any, float, int, str or bool."""
    if isinstance(tp, type) and issubclass(tp, StrEnum):
        if data not in {m.value for m in tp}:
            raise _bad(where, source, data, "one of " + ", ".join(m.value for m in tp))
        return tp(data)
    if tp is Any:
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise _bad(where, source, data, "a number")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _bad(where, source, data, "an integer")
        return data
    if tp in (str, bool):
        if not isinstance(data, tp):
            raise _bad(where, source, data, f"a {tp.__name__}")
        return data
    raise TypeError(f"spec field type {tp!r} at {where} is not supported")
