"""An ensemble of learned simulators fitted on the same logs with different seeds.

A single fitted simulator has errors that depend on the state, and an agent trained in it
finds them: it acts where that one model is wrong in its favour. Many of those errors are
the logs' own sampling noise (a rarely shown group whose few shoppers happened to come
back more often), which every model fitted on the same logs shares. Members fitted on
*bootstrap resamples* of the shoppers (``FitConfig.bootstrap``; other seeds for the
initialisation, validation split and batch order) disagree as that noise says: where
the logs pin the answer down they agree, where they do not they differ. Measured on the
quickstart's world logs (2,000 shoppers per policy): "always show group 5" has true
return visits 3.16; one fit on all shoppers says 3.63, three bootstrap members 3.55,
3.09 and 3.29. An ensemble serves two purposes:

* **training** (domain randomisation): :class:`SimulatorEnsemble` gives each shopper slot
  one member, slot :math:`i` to member :math:`i \\bmod K`, so an agent meets every model's
  errors at once and cannot specialise in one of them;
* **selection** (pessimism): a policy's value in each member separately
  (:func:`member_values`), the smallest of which is what every model of the logs agrees
  the policy reaches at least (:mod:`retentionrl.evaluation.selection`).

On disk an ensemble is a folder with ``ensemble.json`` (``{"format":
"retentionrl-simulator-ensemble", "members": ["member_0", ...]}``) and one learned-
simulator folder per member; :func:`load_members` reads it and
:func:`retentionrl.envs.factory.load_simulator` returns the ensemble. A plain learned-simulator folder
reads as an ensemble of one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retentionrl.core.atomic import atomic_write_text
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "retentionrl-simulator-ensemble"


class SimulatorEnsemble(ShopperSimulator):
    """Shoppers spread over ``members`` (slot :math:`i` -> member :math:`i \\bmod K`).

    Every member must share the action space, observation names and horizon. The
    ensemble exposes the first member's ``card`` and ``history`` (the same logs' action
    map and feature layout in every member).

    :param members: learned simulators (or any simulators) fitted on the same logs.
    :raises ValueError: no members, or members that do not share their interface.
    """

    def __init__(self, members: Sequence[ShopperSimulator]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            for attr in ("action_space", "observation_names", "horizon_days"):
                if getattr(m, attr) != getattr(first, attr):
                    raise ValueError(f"ensemble member {k} differs from member 0 in {attr}")
        self.members = list(members)
        self.action_space = first.action_space
        self.observation_names = first.observation_names
        self.horizon_days = first.horizon_days
        self.card = getattr(first, "card", None)
        self.history = first.history
        self._slots: list[np.ndarray] = []
        self._n = 0

    @property
    def days(self) -> np.ndarray:
        days = np.empty(self._n)
        for m, slots in zip(self.members, self._slots):
            days[slots] = m.days
        return days

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` fresh shoppers, slot :math:`i` in member :math:`i \\bmod K`; each member
        draws its own from a seed spawned from ``seed``."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        self._n = int(n)
        k = len(self.members)
        self._slots = [np.arange(j, self._n, k) for j in range(k)]
        seeds = np.random.SeedSequence(seed).spawn(k) if seed is not None else [None] * k
        obs = np.empty((self._n, self.obs_dim), dtype=np.float32)
        for m, slots, s in zip(self.members, self._slots, seeds):
            obs[slots] = m.reset(len(slots), seed=None if s is None else int(s.generate_state(1)[0]))
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        actions = self.action_space.check(actions, self._n)
        obs = np.empty((self._n, self.obs_dim), dtype=np.float32)
        fields: dict[str, np.ndarray] = {}
        for m, slots in zip(self.members, self._slots):
            if len(slots) == 0:
                continue
            o, out = m.step(actions[slots])
            obs[slots] = o
            for name, value in out.as_dict().items():
                if name not in fields:
                    fields[name] = np.empty(self._n, dtype=value.dtype)
                fields[name][slots] = value
        return obs, VisitOutcome(**fields)

    def replace(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self._n,):
            raise ValueError(f"mask must have shape ({self._n},), got {mask.shape}")
        obs = np.empty((self._n, self.obs_dim), dtype=np.float32)
        for m, slots in zip(self.members, self._slots):
            if len(slots):
                obs[slots] = m.replace(mask[slots])
        return obs


def is_ensemble(folder: str | Path) -> bool:
    """``folder`` holds an ensemble (its ``ensemble.json``)."""
    return (Path(folder) / ENSEMBLE_FILE).is_file()


def member_folders(folder: str | Path) -> list[Path]:
    """The member folders of an ensemble folder; ``[folder]`` for a single simulator."""
    folder = Path(folder)
    if not is_ensemble(folder):
        return [folder]
    path = folder / ENSEMBLE_FILE
    try:
        data = json.loads(path.read_text())
        if data.get("format") != ENSEMBLE_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {ENSEMBLE_FORMAT!r}")
        names = data["members"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError("'members' must be a non-empty list of folder names")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a simulator ensemble ({exc})") from None
    bad = [n for n in names if Path(n).name != n]
    if bad:
        raise ValueError(f"{path}: member names must be plain folder names, got {bad}")
    return [folder / n for n in names]


def write_ensemble(folder: str | Path, members: Sequence[str]) -> Path:
    """Write ``folder/ensemble.json`` naming the member folders (already in ``folder``)."""
    folder = Path(folder)
    missing = [m for m in members if not (folder / m).is_dir()]
    if missing:
        raise ValueError(f"{folder}: ensemble members {missing} are not folders there")
    path = folder / ENSEMBLE_FILE
    atomic_write_text(path, json.dumps({"format": ENSEMBLE_FORMAT, "members": list(members)}, indent=2))
    return path


def load_members(folder: str | Path, device: str = "auto") -> list[ShopperSimulator]:
    """Every member of the ensemble in ``folder`` (one for a single simulator's folder)."""
    from retentionrl.simulators.learned.simulator import LearnedSimulator

    return [LearnedSimulator.load(f, device=device) for f in member_folders(folder)]


def load_ensemble(folder: str | Path, device: str = "auto") -> ShopperSimulator:
    """The simulator of ``folder``: an ensemble of its members, or the single simulator."""
    members = load_members(folder, device)
    return members[0] if len(members) == 1 else SimulatorEnsemble(members)
