"""Stage caching for the pipeline: reuse a stage's outputs while its inputs and config hold.

A stage writes into its own folder ``OUT/<stage>/`` and, last of all, ``stage.json``::

    {"stage": "simulator", "key": "<sha256>", "config": {...},
     "inputs": {"train_log": "<sha256 of the file>"}, "seconds": 12.3}

The key is the SHA-256 of the stage name, its config (canonical JSON), the SHA-256 of
every input file (a folder input hashes its files, ``tensorboard/`` and checkpoints
aside), the world version :data:`~retentionrl.simulators.world.config.WORLD_VERSION` and the learned
simulator's :data:`~retentionrl.simulators.learned.sequence_model.MODEL_VERSION`, so outputs made under
another version of the world's laws and money (world v1 had no cost of goods) or of the
simulator's equations are never reused. A later run reuses the folder when ``stage.json`` holds the same key;
otherwise it empties the folder and recomputes. ``stage.json`` is written atomically after
the outputs, so an interrupted stage is never taken as done.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retentionrl.core.atomic import atomic_write_text, sha256_file
from retentionrl.simulators.learned.sequence_model import MODEL_VERSION
from retentionrl.simulators.world.config import WORLD_VERSION

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


def stage_key(name: str, config: dict, inputs: dict[str, str]) -> str:
    """SHA-256 of the stage name, its config, its inputs' hashes and the world and model
    versions (canonical JSON)."""
    text = json.dumps({"stage": name, "config": config, "inputs": inputs, "world_version": WORLD_VERSION,
                       "model_version": MODEL_VERSION}, sort_keys=True, default=str)
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
    out: Path, name: str, config: dict, inputs: dict[str, Path], compute: Callable[[Path], None],
    *, echo: Callable[[str], None] = print,
) -> StageRun:
    """Reuse ``out/name`` when its key matches, else empty it and call ``compute(folder)``.

    :param config: everything of the run's config that this stage's outputs depend on
        (JSON-ready).
    :param inputs: the files or folders it reads, by role.
    """
    folder = out / name
    hashes = {role: input_hash(p) for role, p in sorted(inputs.items())}
    key = stage_key(name, config, hashes)
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
    atomic_write_text(marker, json.dumps({"stage": name, "key": key, "config": config, "inputs": hashes,
                                          "seconds": round(seconds, 2)}, indent=2, default=str))
    echo(f"[{name}] done in {seconds:.1f} s")
    return StageRun(name, folder, key, False, seconds)
