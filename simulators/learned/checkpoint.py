"""Checkpoints of the learned simulator: safetensors for tensors, JSON for the rest.

A checkpoint is a directory holding

* ``model.safetensors`` -- the state dict (tensors only: nothing is ever unpickled);
* ``config.json`` -- the model card (:class:`retentionrl.simulators.learned.model_card.ModelCard`: sizes, action
  map, which heads were learned, fit config, data summary) and the SHA-256 of
  ``model.safetensors``.

Both files are written atomically (:func:`retentionrl.core.atomic.atomic_path`), tensors
first, so a reader sees a complete old or new checkpoint. :func:`load_checkpoint` checks
the checksum before parsing the tensors and turns every failure (missing, truncated,
corrupt or mismatched file) into one :class:`CheckpointError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from retentionrl.core.atomic import atomic_path, atomic_write_text, sha256_file

TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "retentionrl-learned-simulator"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self) -> tuple:
        """Pickle by the arguments (an error raised in a worker process reaches the caller whole)."""
        return type(self), (self.path, self.reason)


def save_checkpoint(directory: str | Path, state: dict[str, torch.Tensor], card: dict) -> Path:
    """Write ``state`` and the JSON-ready ``card`` into ``directory``; returns the JSON's path."""
    directory = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    with atomic_path(directory / TENSORS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        digest = sha256_file(tmp)
    meta = {"format": FORMAT, "version": VERSION, "card": card, "checksum": {"file": TENSORS_FILE, "sha256": digest}}
    atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2, sort_keys=False))
    return directory / CONFIG_FILE


def load_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The state dict (CPU tensors) and card of a checkpoint, after checking its checksum.

    :raises CheckpointError: a missing, unreadable, truncated or corrupt file, a checksum
        mismatch or a foreign format, naming the file.
    """
    directory = Path(directory)
    config_path, tensors_path = directory / CONFIG_FILE, directory / TENSORS_FILE
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(config_path, "no such file: not a learned-simulator checkpoint directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(config_path, f"unreadable or corrupt JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "card" not in meta:
        raise CheckpointError(config_path, f"not a {FORMAT} checkpoint")
    if meta.get("version") != VERSION:
        raise CheckpointError(config_path, f"checkpoint version {meta.get('version')!r}, this code reads {VERSION}")
    try:
        data = tensors_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(tensors_path, f"cannot read ({exc.strerror or exc})") from None
    expected = meta.get("checksum", {}).get("sha256")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise CheckpointError(
            tensors_path,
            f"checksum mismatch (SHA-256 {actual[:12]}..., {CONFIG_FILE} expects "
            f"{str(expected)[:12]}...): truncated, corrupt, or from another checkpoint",
        )
    try:
        state = load_safetensors(data)
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise CheckpointError(tensors_path, f"corrupt safetensors file ({exc})") from None
    return state, meta["card"]
