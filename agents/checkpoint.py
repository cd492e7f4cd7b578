"""Checkpoints of a training run that resume exactly, with no pickle anywhere.

stable-baselines3's ``.zip`` holds cloudpickle and no random-generator states (SB3 #1526),
so a run saves its own checkpoint, one folder per save under ``OUT/checkpoints/``:

=====================  =================================================================
file                   content
=====================  =================================================================
``policy.safetensors`` the policy's tensors (PPO actor-critic; DQN Q and target networks)
                       and torch's CPU random-generator state
``optimizer.pt``       the optimizer's state dict, read back with ``weights_only=True``
``replay.npz``         DQN only: the replay buffer's arrays (``allow_pickle=False``)
``state.json``         step count, update, episode and (DQN) call counters, numpy / Python
                       / action space generator states, and a SHA-256 of each file above
=====================  =================================================================

A checkpoint is written into a temporary folder and renamed into place, then
``checkpoints/latest.json`` is replaced atomically to point at it, so an interrupted save
leaves the previous checkpoint current. Loading checks every checksum and raises one
:class:`AgentCheckpointError` naming the file for anything truncated, corrupt or missing.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer

from retentionrl.core.atomic import atomic_write_text, sha256_file
from retentionrl.core.errors import InputError

LATEST = "latest.json"
POLICY_FILE, OPTIMIZER_FILE, REPLAY_FILE, STATE_FILE = "policy.safetensors", "optimizer.pt", "replay.npz", "state.json"
_RNG_KEY = "__torch_rng_state__"
_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
_STATE_KEYS = ("num_timesteps", "n_updates", "episode_num", "numpy_rng", "python_rng", "action_space_rng")
"""The keys of ``state.json`` that resuming reads (``n_calls`` and ``sha256`` may be absent)."""


class AgentCheckpointError(InputError):
    """A checkpoint that cannot be used; the message names the file."""


def save_training_state(model: BaseAlgorithm, folder: str | Path) -> Path:
    """Save everything needed to resume ``model`` into ``folder/checkpoints/step_<N>``."""
    root = Path(folder) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{model.num_timesteps:012d}"
    tmp = Path(tempfile.mkdtemp(prefix=".saving-", dir=root))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}
        tensors[_RNG_KEY] = torch.get_rng_state()
        save_file(tensors, tmp / POLICY_FILE)
        torch.save(model.policy.optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        files = [POLICY_FILE, OPTIMIZER_FILE]
        if isinstance(model, DQN):
            buffer = _replay_buffer(model)
            np.savez(
                tmp / REPLAY_FILE,
                pos=buffer.pos,
                full=buffer.full,
                **{name: getattr(buffer, name) for name in _REPLAY_ARRAYS},
            )
            files.append(REPLAY_FILE)
        state = {
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(getattr(model, "_n_updates", 0)),
            "episode_num": int(model._episode_num),
            "n_calls": int(getattr(model, "_n_calls", 0)),  # DQN: its target-network update clock
            "numpy_rng": _jsonable(np.random.get_state()),
            "python_rng": _jsonable(random.getstate()),
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "sha256": {name: sha256_file(tmp / name) for name in files},
        }
        (tmp / STATE_FILE).write_text(json.dumps(state))
        for name in [*files, STATE_FILE]:
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic_write_text(root / LATEST, json.dumps({"checkpoint": final.name, "num_timesteps": model.num_timesteps}))
    return final


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The folder ``latest.json`` points at, or ``None`` when the run never saved."""
    pointer = Path(folder) / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    try:
        return pointer.parent / json.loads(pointer.read_text())["checkpoint"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AgentCheckpointError(pointer, f"unreadable checkpoint pointer ({exc})") from None


def load_training_state(model: BaseAlgorithm, checkpoint: str | Path) -> None:
    """Restore a freshly built ``model`` (same config) from ``checkpoint``, in place."""
    checkpoint = Path(checkpoint)
    state_path = checkpoint / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AgentCheckpointError(state_path, f"missing or unreadable checkpoint state ({exc})") from None
    missing = [key for key in _STATE_KEYS if key not in state] if isinstance(state, dict) else list(_STATE_KEYS)
    if missing:
        raise AgentCheckpointError(state_path, f"not a checkpoint state: missing key(s) {missing}")
    for name, digest in state.get("sha256", {}).items():
        path = checkpoint / name
        if not path.exists() or sha256_file(path) != digest:
            raise AgentCheckpointError(path, "missing, truncated or corrupt (checksum mismatch)")
    try:
        tensors = load_file(checkpoint / POLICY_FILE)
        torch_rng = tensors.pop(_RNG_KEY)
        model.policy.load_state_dict(tensors)
        model.policy.optimizer.load_state_dict(torch.load(checkpoint / OPTIMIZER_FILE, weights_only=True))
    except (SafetensorError, RuntimeError, KeyError, ValueError) as exc:
        raise AgentCheckpointError(checkpoint / POLICY_FILE, f"does not fit this model ({exc})") from None
    if isinstance(model, DQN):
        with np.load(checkpoint / REPLAY_FILE, allow_pickle=False) as replay:
            buffer = _replay_buffer(model)
            for name in _REPLAY_ARRAYS:
                getattr(buffer, name)[...] = replay[name]
            buffer.pos, buffer.full = int(replay["pos"]), bool(replay["full"])
    model.num_timesteps = state["num_timesteps"]
    if hasattr(model, "_n_updates"):
        model._n_updates = state["n_updates"]
    model._episode_num = state["episode_num"]
    if hasattr(model, "_n_calls"):  # checkpoints written before it was saved: one call per step of the batch
        model._n_calls = state.get("n_calls", state["num_timesteps"] // model.n_envs)
    torch.set_rng_state(torch_rng)
    np.random.set_state(_from_json(state["numpy_rng"]))
    random.setstate(_from_json(state["python_rng"]))
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]


def _replay_buffer(model: DQN) -> ReplayBuffer:
    """The replay buffer of a DQN model (one that is set up has one)."""
    if model.replay_buffer is None:
        raise ValueError("the DQN model has no replay buffer (it was never set up)")
    return model.replay_buffer


def _jsonable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _from_json(value: object) -> Any:  # decoded JSON, as json.loads returns it
    if isinstance(value, dict) and "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    return value
