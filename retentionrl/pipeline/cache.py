"""Stage caching for the pipeline: reuse a stage's outputs while its inputs and config hold.

A stage writes into its own folder ``OUT/<stage>/`` and, last of all, ``stage.json``::

    {"stage": "simulator", "key": "<sha256>", "config": {...},
     "inputs": {"train_log": "<sha256 of the file>"}, "seconds": 12.3}

The key is the SHA-256 of the stage name, its config (canonical JSON), the SHA-256 of
every input file (a folder input hashes its files, ``tensorboard/`` and checkpoints
aside) and the **code** that computes the stage: the package version, the source of the
module defining the stage's ``compute`` function (that file alone), and the modules the
stage names (``code=``) with every module of the same package they import, transitively
(:func:`code_hash`). Outputs made by another version of the code — the world's laws, the
simulator's equations, an estimator — are never reused, and a change in one stage's code
recomputes that stage and those downstream of it, not the others (their inputs are
unchanged). A later run reuses the folder when ``stage.json`` holds the same key;
otherwise it empties the folder and recomputes. ``stage.json`` is written atomically after
the outputs, so an interrupted stage is never taken as done.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from retentionrl.core.atomic import atomic_write_text, sha256_file

STAGE_FILE = "stage.json"
SKIPPED_DIRS = frozenset({"tensorboard", "checkpoints"})


def input_hash(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents; logs aside)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise ValueError(f"{path}: stage input does not exist")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if rel.parts[0] in SKIPPED_DIRS or rel.name == STAGE_FILE or rel.name.startswith("."):
            continue
        digest.update(f"{rel.as_posix()}\0{sha256_file(file)}\0".encode())
    return digest.hexdigest()


def _module_file(name: str) -> Path | None:
    """The source file of an importable module (None for a name that is not one, such as a
    class imported with ``from package.module import Class``)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@cache
def _imports(name: str) -> tuple[str, ...]:
    """Modules of ``name``'s own top-level package that module ``name`` imports, with the
    packages (``__init__``) above each, which importing it also runs."""
    root = name.split(".")[0]
    file = _module_file(name)
    if file is None:
        return ()
    found: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            parts = candidate.split(".")
            if parts[0] != root:
                continue
            found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    return tuple(sorted(m for m in found if _module_file(m) is not None))


def code_hash(modules: Iterable[str]) -> str:
    """SHA-256 of the source of ``modules`` and of every module of their own top-level package
    they import, transitively (imports inside functions included)."""
    seen: dict[str, Path] = {}
    stack = list(modules)
    while stack:
        name = stack.pop()
        file = _module_file(name) if name not in seen else None
        if file is not None:
            seen[name] = file
            stack.extend(_imports(name))
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(f"{name}\0{sha256_file(seen[name])}\0".encode())
    return digest.hexdigest()


def _package_version() -> str:
    try:
        return version("retentionrl")
    except PackageNotFoundError:
        return "not installed"


def stage_key(name: str, config: dict, inputs: dict[str, str], code: str) -> str:
    """SHA-256 of the stage name, its config, its inputs' hashes, its code hash and the
    package version (canonical JSON)."""
    text = json.dumps(
        {"stage": name, "config": config, "inputs": inputs, "code": code, "version": _package_version()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StageRun:
    """Where a stage's outputs are and whether this run reused them."""

    name: str
    folder: Path
    key: str
    reused: bool
    seconds: float


def run_stage(
    out: Path,
    name: str,
    config: dict,
    inputs: dict[str, Path],
    compute: Callable[[Path], None],
    *,
    code: Iterable[str] = (),
    echo: Callable[[str], None] = print,
) -> StageRun:
    """Reuse ``out/name`` when its key matches, else empty it and call ``compute(folder)``.

    :param config: everything of the run's config that this stage's outputs depend on
        (JSON-ready).
    :param inputs: the files or folders it reads, by role.
    :param code: the modules whose functions ``compute`` calls; their code, what they import
        and the module defining ``compute`` key the stage.
    """
    folder = out / name
    hashes = {role: input_hash(p) for role, p in sorted(inputs.items())}
    definer = _module_file(compute.__module__)
    code_key = code_hash(code) + (sha256_file(definer) if definer is not None else "")
    key = stage_key(name, config, hashes, code_key)
    marker = folder / STAGE_FILE
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            saved = {}
        if saved.get("key") == key:
            echo(f"[{name}] reused (inputs and config unchanged)")
            return StageRun(name, folder, key, True, 0.0)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    echo(f"[{name}] computing ...")
    t0 = time.perf_counter()
    compute(folder)
    seconds = time.perf_counter() - t0
    atomic_write_text(
        marker,
        json.dumps(
            {"stage": name, "key": key, "config": config, "inputs": hashes, "seconds": round(seconds, 2)},
            indent=2,
            default=str,
        ),
    )
    echo(f"[{name}] done in {seconds:.1f} s")
    return StageRun(name, folder, key, False, seconds)
