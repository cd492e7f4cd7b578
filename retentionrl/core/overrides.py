"""Set the fields of a config dataclass by name, checked by the dataclass itself.

A component's settings are defined once, as a frozen dataclass whose fields carry a default,
a docstring (the string literal under the field, as in CleanRL's ``Args``) and the checks of
its ``__post_init__`` (:class:`retentionrl.agents.config.TrainConfig`,
:class:`retentionrl.simulators.learned.config.FitConfig`). Entry points declare only their
common options; every other field is reached by name through this module:

- ``NAME=VALUE`` strings (the CLI's repeatable ``--set``; the value is read as YAML, so
  ``net_arch=[128, 128]``, ``ppo_ent_coef=0.02`` and ``bootstrap=true`` all work), and
- mappings (a sweep's search space in YAML).

Each value is converted to the field's annotated type by pydantic (a list becomes a tuple,
``3`` a float where a float is declared; ``"abc"`` for an int is an error), then the whole
config is rebuilt with :func:`dataclasses.replace`, so the dataclass's own checks run. Any
problem is one ``ValueError`` naming the source and the field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from collections.abc import Collection, Mapping, Sequence
from functools import cache
from typing import Any, TypeVar, get_type_hints

import yaml
from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of dataclass ``cls`` (the string literal right under the
    field, in the class or a dataclass base), joined into one line; ``""`` where there is none."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, following in zip(body.body, body.body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}


def parse_assignments(items: Sequence[str], option: str = "--set") -> dict[str, Any]:
    """``["a=1", "b=[2, 3]"]`` -> ``{"a": 1, "b": [2, 3]}`` (values read with ``yaml.safe_load``);
    ``ValueError`` naming ``option`` and the item for one without ``=`` or given twice."""
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{option} {item!r}: expected NAME=VALUE, e.g. {option} learning_rate=1e-4")
        if name in values:
            raise ValueError(f"{option} {item!r}: {name} is set twice")
        try:
            values[name] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            values[name] = text
    return values


def with_overrides(config: T, values: Mapping[str, Any], *, source: str, fixed: Mapping[str, str] | None = None) -> T:
    """``config`` (a dataclass instance) with ``values`` set by field name.

    :param source: what to name in errors (``"--set"``, ``"tune.yaml: search"``).
    :param fixed: fields the caller sets itself, each with what sets it (``{"total_steps":
        "--steps"}``); naming one is an error that says where to set it.
    :raises ValueError: an unknown or fixed field, a value of the wrong type, or a value the
        dataclass's checks refuse; one line naming ``source`` and the field.
    """
    cls = type(config)
    hints = get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    converted: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"{source}: unknown field {name!r} of {cls.__name__} (known: {', '.join(known)})")
        if fixed and name in fixed:
            raise ValueError(f"{source}: {name} is set by {fixed[name]}, not by name")
        try:
            converted[name] = TypeAdapter(hints[name]).validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{source}: {name}: {first['msg']} (got {value!r})") from None
    try:
        return dataclasses.replace(config, **converted)  # type: ignore[type-var]
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None


def describe_fields(cls: type, exclude: Collection[str] = ()) -> list[tuple[str, str, str]]:
    """``(name, default, doc)`` of each field of dataclass ``cls`` not in ``exclude``, for a
    listing such as ``retentionrl train --fields``."""
    docs = field_docs(cls)
    return [
        (f.name, repr(f.default), docs[f.name])
        for f in dataclasses.fields(cls)
        if f.name not in exclude and f.default is not dataclasses.MISSING
    ]
