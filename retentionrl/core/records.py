"""Typed records to JSON and back: what one stage hands the next.

A record is a (frozen) dataclass whose fields are JSON-ready types, other records, or
``list`` / ``tuple`` / ``dict[str, ...]`` / ``X | None`` of them. :func:`write_record`
writes it with a schema name and version; :func:`read_record` reads it back into the same
class and refuses a file of another schema or version, a missing field or an unknown one,
naming the path inside the file — so a renamed field fails where it is read, not as a
silently empty cell of a report.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from retentionrl.core.atomic import atomic_write_text

R = TypeVar("R")


class RecordError(ValueError):
    """A record file that does not match the record class it is read into."""


def to_plain(value: Any) -> Any:
    """JSON-ready form of a record (dataclasses as dicts, tuples as lists, numpy arrays as
    lists and numpy scalars as Python numbers)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def from_plain(kind: Any, data: Any, where: str = "$") -> Any:
    """Build a value of type ``kind`` from its JSON form; :class:`RecordError` names the
    place (``$.policies.ppo.world``) where the data does not fit."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return from_plain(inner, data, where)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected an object for {kind.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(kind)
        fields = {f.name: f for f in dataclasses.fields(kind)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise RecordError(f"{where}: unknown field {unknown[0]!r} for {kind.__name__}")
        values = {}
        for name, field in fields.items():
            if name in data:
                values[name] = from_plain(hints[name], data[name], f"{where}.{name}")
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing field {name!r} of {kind.__name__}")
        return kind(**values)
    if origin is dict:
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected an object, got {type(data).__name__}")
        return {k: from_plain(args[1], v, f"{where}.{k}") for k, v in data.items()}
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise RecordError(f"{where}: expected a list, got {type(data).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[str, float]: one type per place
            if len(data) != len(args):
                raise RecordError(f"{where}: expected {len(args)} items, got {len(data)}")
            return tuple(from_plain(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, data)))
        inner = args[0] if args else Any
        items = [from_plain(inner, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return items if origin is list else tuple(items)
    if kind is float:
        if data is None or isinstance(data, bool) or not isinstance(data, int | float):
            if data is None:
                return float("nan")
            raise RecordError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if kind in (int, str, bool):
        if not isinstance(data, kind) or (kind is int and isinstance(data, bool)):
            raise RecordError(f"{where}: expected {kind.__name__}, got {data!r}")
    return data


def json_text(value: Any) -> str:
    """Indented JSON of :func:`to_plain` ``(value)``; any other object (a timestamp, a path)
    as its ``str``."""
    return json.dumps(to_plain(value), indent=2, default=str)


def write_record(path: str | Path, record: Any, schema: str, version: int) -> None:
    """Write ``record`` atomically as ``{"schema": ..., "schema_version": ..., **fields}``."""
    atomic_write_text(Path(path), json_text({"schema": schema, "schema_version": version, **to_plain(record)}))


def read_record(path: str | Path, kind: type[R], schema: str, version: int) -> R:
    """Read a record written by :func:`write_record`; :class:`RecordError` (naming the file)
    for another schema or version or fields that do not fit ``kind``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: cannot read a {schema} record ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != schema or data.get("schema_version") != version:
        found = (data.get("schema"), data.get("schema_version")) if isinstance(data, dict) else None
        raise RecordError(
            f"{path}: expected a {schema} record of schema version {version}, found {found}: "
            "written by another version of retentionrl; delete the stage folder to recompute it"
        )
    fields = {k: v for k, v in data.items() if k not in ("schema", "schema_version")}
    try:
        return from_plain(kind, fields)
    except RecordError as exc:
        raise RecordError(f"{path}: {exc}") from exc
