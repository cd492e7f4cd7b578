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
3.09 and 3.29. An ensemble serves three purposes:

* **training** (domain randomisation): :class:`SimulatorEnsemble` gives each shopper slot
  one member, slot :math:`i` to member :math:`i \\bmod K`, so an agent meets every model's
  errors at once and cannot specialise in one of them (mode ``"split"``);
* **training** (pessimism, as model-based offline RL is): every member holds every shopper,
  a member drawn at random draws each visit's outcome and the others are moved along the
  same visit; the members' *disagreement* about the visit is large where the logs do not pin
  the answer down, and an agent's reward penalised by it (MOPO, Yu et al. 2020) keeps the
  agent where the models agree (mode ``"shared"``, :attr:`SimulatorEnsemble.disagreement`;
  members with latent classes, ``ModelSpec.latent_classes > 1``, each draw their own
  shoppers' classes, so there the disagreement also counts the class draws);
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
from typing import TYPE_CHECKING

import numpy as np

from retentionrl.core.atomic import atomic_write_text
from retentionrl.simulators.interface import ShopperSimulator, VisitOutcome

if TYPE_CHECKING:  # imported where it is needed: reading an ensemble's folder needs no torch
    from retentionrl.simulators.learned.simulator import LearnedSimulator

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "retentionrl-simulator-ensemble"
MODES: tuple[str, ...] = ("split", "shared")
"""How a :class:`SimulatorEnsemble` holds its shoppers: each in one member, or each in all."""


class SimulatorEnsemble(ShopperSimulator):
    """An ensemble of ``members`` holding a batch of shoppers in one of :data:`MODES`:

    * ``"split"``: slot :math:`i` lives in member :math:`i \\bmod K` only, which steps it;
    * ``"shared"``: every member holds every slot (learned simulators only). At each step,
      every member opens the visit (:meth:`LearnedSimulator.open_visit
      <retentionrl.simulators.learned.simulator.LearnedSimulator.open_visit>`) and predicts
      it; for each shopper one member :math:`k_i`, drawn uniformly from the ensemble's own
      generator, draws the visit's outcome (as MBPO and MOPO draw the next state from a random
      member), and every member records that outcome (teacher forcing), so all of them keep
      one observable history per shopper. Given the shared history, a member drawn
      uniformly and then its law is a draw from the *mean* of the members' laws (their
      uniform mixture): shared mode steps the ensemble's mean model. The returned outcome is member :math:`k_i`'s (its
      cost of goods at its own gross margins); the observation is the members' common one.
      The step costs about :math:`K` member steps plus :math:`K` predictions.

    After each shared step, :attr:`disagreement` holds, per shopper, how much the members'
    predictions of the visit (before the draw) disagree.

    Every member must share the action space, observation names and horizon. The
    ensemble exposes the first member's ``card`` and ``history`` (the same logs' action
    map and feature layout in every member).

    :param members: learned simulators (or any simulators, split mode) fitted on the same logs.
    :param mode: ``"split"`` (default) or ``"shared"``.
    :raises ValueError: no members, members that do not share their interface, an unknown
        mode, or a shared mode with a member that is not a learned simulator.
    """

    def __init__(self, members: Sequence[ShopperSimulator], mode: str = "split") -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if mode not in MODES:
            raise ValueError(f"ensemble mode must be one of {list(MODES)}, got {mode!r}")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            for attr in ("action_space", "observation_names", "horizon_days"):
                if getattr(m, attr) != getattr(first, attr):
                    raise ValueError(f"ensemble member {k} differs from member 0 in {attr}")
        self._learned: list[LearnedSimulator] = []
        if mode == "shared":
            from retentionrl.simulators.learned.simulator import LearnedSimulator

            self._learned = [m for m in members if isinstance(m, LearnedSimulator)]
            if len(self._learned) < len(members):
                raise ValueError("a shared ensemble needs learned simulators as members (they are moved along a visit)")
        self.members = list(members)
        self.mode = mode
        self.action_space = first.action_space
        self.observation_names = first.observation_names
        self.horizon_days = first.horizon_days
        self.card = getattr(first, "card", None)
        self.history = first.history
        self._slots: list[np.ndarray] = []
        self._n = 0
        self._rng = np.random.default_rng(0)
        self._disagreement = np.zeros(0)

    @property
    def days(self) -> np.ndarray:
        if self.mode == "shared":
            return self.members[0].days
        days = np.empty(self._n)
        for m, slots in zip(self.members, self._slots):
            days[slots] = m.days
        return days

    @property
    def disagreement(self) -> np.ndarray:
        """Shared mode: the members' disagreement about each shopper's last visit, ``(n,)``
        (NaN before the first step of a shopper batch): with :math:`K` members'
        predictions :math:`p^{(k)}` of purchase and :math:`q^{(k)}` of a return within
        :math:`H`, given the shopper's history and the action
        (:meth:`LearnedSimulator.predict <retentionrl.simulators.learned.simulator.LearnedSimulator.predict>`),

        .. math::

            u = \\mathrm{std}_k\\, p^{(k)} + \\mathrm{std}_k\\, q^{(k)}

        (population standard deviations, in :math:`[0, 1]`; 0 for identical members).

        :raises ValueError: in split mode, where no two members see the same shopper.
        """
        if self.mode != "shared":
            raise ValueError("an ensemble in split mode has no disagreement: build it with mode='shared'")
        return self._disagreement

    def reset(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` fresh shoppers: in split mode, slot :math:`i` in member :math:`i \\bmod K`;
        in shared mode, all of them in every member. Member :math:`k` draws from the
        :math:`k`-th seed spawned from ``seed``, the shared ensemble's own generator from the
        :math:`(K + 1)`-th."""
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        self._n = int(n)
        k = len(self.members)
        spawned = np.random.SeedSequence(seed).spawn(k + 1) if seed is not None else [None] * (k + 1)
        seeds = [None if s is None else int(s.generate_state(1)[0]) for s in spawned]
        if self.mode == "shared":
            if seed is not None:
                self._rng = np.random.default_rng(seeds[k])
            self._disagreement = np.full(self._n, np.nan)
            return [m.reset(self._n, seed=s) for m, s in zip(self.members, seeds)][0]
        self._slots = [np.arange(j, self._n, k) for j in range(k)]
        obs = np.empty((self._n, self.obs_dim), dtype=np.float32)
        for m, slots, s in zip(self.members, self._slots, seeds):
            obs[slots] = m.reset(len(slots), seed=s)
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        actions = self.action_space.check(actions, self._n)
        if self.mode == "shared":
            return self._step_shared(actions)
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

    def _step_shared(self, actions: np.ndarray) -> tuple[np.ndarray, VisitOutcome]:
        """One visit of every shopper in shared mode (class docstring)."""
        visits = [m.open_visit(actions) for m in self._learned]
        predicted = np.stack([v.predict() for v in visits]).astype(np.float64)  # (K, n, 2)
        self._disagreement = predicted.std(axis=0).sum(axis=1)
        source = self._rng.integers(len(visits), size=self._n)
        drawn = np.empty((5, self._n))
        for k, visit in enumerate(visits):
            rows = source == k
            if rows.any():
                drawn[:, rows] = visit.draw()[:, rows]
        closed = [visit.close(drawn) for visit in visits]
        shopper = np.arange(self._n)
        fields = {
            name: np.stack([out.as_dict()[name] for _, out in closed])[source, shopper]
            for name in closed[0][1].as_dict()
        }
        return closed[0][0], VisitOutcome(**fields)

    def replace(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self._n,):
            raise ValueError(f"mask must have shape ({self._n},), got {mask.shape}")
        if self.mode == "shared":
            return [m.replace(mask) for m in self.members][0]
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


def load_ensemble(folder: str | Path, device: str = "auto", mode: str = "split") -> ShopperSimulator:
    """The simulator of ``folder``: an ensemble of its members in ``mode``, or the single simulator."""
    members = load_members(folder, device)
    return members[0] if len(members) == 1 else SimulatorEnsemble(members, mode)
