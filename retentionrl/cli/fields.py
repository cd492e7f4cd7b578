"""The ``--set NAME=VALUE`` and ``--fields`` options of commands whose settings are a config
dataclass (:mod:`retentionrl.core.overrides`): a command declares its common options, and
every other field of the dataclass is reached by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import typer

from retentionrl.core.overrides import describe_fields, parse_assignments, with_overrides

T = TypeVar("T")

SET_HELP = "NAME=VALUE of any other field of the config (repeatable; VALUE is read as YAML); --fields lists them."


def fields_callback(cls: type, fixed: Mapping[str, str]) -> Callable[[bool], None]:
    """An eager ``--fields`` callback: print each field of ``cls`` that ``--set`` can reach
    (name, default, what it does) and exit."""

    def callback(value: bool) -> None:
        if value:
            for name, default, doc in describe_fields(cls, exclude=fixed):
                typer.echo(f"{name} = {default}\n    {doc}")
            raise typer.Exit()

    return callback


def apply_set(config: T, items: list[str], fixed: Mapping[str, str]) -> T:
    """``config`` with the ``--set`` items applied; a bad item is one ``ValueError`` naming it."""
    return with_overrides(config, parse_assignments(items), source="--set", fixed=fixed) if items else config
