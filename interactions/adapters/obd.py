"""Open Bandit Dataset (ZOZOTOWN, Saito et al. 2021) → bandit feedback with positions.

A policy folder (``obd/<policy>/<campaign>/``) holds the log ``<campaign>.csv`` and
``item_context.csv``. Each log row is one round:

==============  ==============================================================================
field           from
==============  ==============================================================================
action          ``item_id`` (0 .. n_actions - 1; n_actions = rows of ``item_context.csv``, 80)
position        ``position - 1``: the file's slots 1..3 become 0..2; ``len_list`` = largest slot
reward          ``click`` (0/1)
propensity      ``propensity_score``
context         one-hot of ``user_feature_0..3`` (levels sorted, first level of each dropped,
                as obp's ``pd.get_dummies(..., drop_first=True)``), then, with
                ``affinity=True``, ``user-item_affinity_0..n_actions-1``
action_context  ``item_feature_0`` then one-hot (all levels) of the hashed categories
                ``item_feature_1..``
==============  ==============================================================================

Rounds keep the file's order (the published files are sorted by timestamp, as obp sorts).
The hashed categories are salted per policy folder, so contexts of two folders do not line up.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters._common import check_not_null, numbers, one_hot
from retentionrl.interactions.bandit import BanditFeedback
from retentionrl.interactions.tables import read_table

SIGNATURE_COLUMNS: tuple[str, ...] = ("item_id", "position", "click", "propensity_score", "user_feature_0")
"""Columns that identify an OBD log file."""

USER_FEATURES: tuple[str, ...] = tuple(f"user_feature_{i}" for i in range(4))
AFFINITY_PREFIX = "user-item_affinity_"
ACTION_DIST_TOLERANCE = 1e-3
"""How far each position's probabilities in an action-distribution file may sum from 1."""


def read_obd(path: str | Path, *, affinity: bool = False, item_context: str | Path | None = None) -> BanditFeedback:
    """Read one OBD policy log as bandit feedback.

    :param path: the policy folder (``.../random/all``) or its log file (``.../all.csv``).
    :param affinity: append the user-item affinity columns to the context.
    :param item_context: the item features file; by default ``item_context.csv`` beside
        the log.
    :raises LogError: a missing file or column, a null, a slot below 1, an item id that is
        not in the item context, a propensity outside (0, 1].
    """
    log = _log_file(Path(path))
    item_path = log.parent / "item_context.csv" if item_context is None else Path(item_context)
    action_context, n_actions = _action_context(item_path)

    affinity_names = [f"{AFFINITY_PREFIX}{i}" for i in range(n_actions)] if affinity else []
    frame = read_table(log, columns=SIGNATURE_COLUMNS + USER_FEATURES[1:] + tuple(affinity_names))
    check_not_null(frame, USER_FEATURES, log)

    slot = numbers(frame["position"], "position", log)
    bad = (slot < 1) | (slot != np.round(slot))
    if bad.any():
        raise LogError.for_rows(log, "slots are numbered 1, 2, ...", "position", bad, slot)

    context, names = one_hot(frame, USER_FEATURES, drop_first=True)
    if affinity:
        affinities = np.column_stack([numbers(frame[c], c, log) for c in affinity_names])
        context = np.hstack([context, affinities])
        names += affinity_names
    return BanditFeedback(
        n_actions=n_actions,
        action=numbers(frame["item_id"], "item_id", log),
        reward=numbers(frame["click"], "click", log),
        propensity=numbers(frame["propensity_score"], "propensity_score", log),
        context=context,
        position=slot.astype(np.int64) - 1,
        len_list=int(slot.max()),
        action_context=action_context,
        reward_name="click",
        source=str(log),
        context_names=tuple(names),
    )


def read_bts_action_dist(path: str | Path) -> np.ndarray:
    """An evaluation policy's action distribution per slot from a CSV or Parquet file with
    columns ``item_id, position_1, ..., position_K`` (one row per item), such as
    ``bts_action_dist_all.csv``.

    :returns: float64 array ``(n_actions, len_list)``: entry ``[a, k]`` is the probability
        of showing item ``a`` at 0-based slot ``k``; each column sums to 1 (within
        :data:`ACTION_DIST_TOLERANCE`). Pass it to :meth:`BanditFeedback.prob_of_logged`.
    """
    frame = read_table(path)
    slots = _numbered(frame.columns, "position_")
    if "item_id" not in frame.columns or not slots:
        raise LogError(path, f"expected columns item_id, position_1, ...; the file has {list(frame.columns)}")
    if slots != [f"position_{k}" for k in range(1, len(slots) + 1)]:
        raise LogError(path, f"position columns must be position_1 .. position_K, got {slots}")
    dist = np.column_stack([numbers(frame[c], c, path) for c in slots])
    negative = dist < 0
    if negative.any():
        row, col = np.argwhere(negative)[0]
        raise LogError(
            path,
            "negative probability",
            column=slots[col],
            rows=[row],
            values=[dist[row, col]],
            n_bad=int(negative.sum()),
        )
    sums = dist.sum(axis=0)
    off = np.abs(sums - 1.0) > ACTION_DIST_TOLERANCE
    if off.any():
        shown = {slots[k]: round(float(sums[k]), 6) for k in np.flatnonzero(off)}
        raise LogError(path, f"each position's probabilities must sum to 1; sums: {shown}")
    return dist[_item_order(frame["item_id"], path)]


def _log_file(path: Path) -> Path:
    """``folder/<folder name>.csv`` for a folder (obp's layout), the path itself otherwise."""
    if path.is_dir():
        log = path / f"{path.name}.csv"
        if not log.is_file():
            raise LogError(path, f"no log file {log.name} in this policy folder")
        return log
    return path


def _action_context(path: Path) -> tuple[np.ndarray, int]:
    """(action_context ``(n_actions, k)``, n_actions) from an item_context file."""
    items = read_table(path)
    missing = [c for c in ("item_id", "item_feature_0") if c not in items.columns]
    if missing:
        raise LogError(path, f"missing column(s) {missing}; the file has {sorted(map(str, items.columns))}")
    categorical = [c for c in _numbered(items.columns, "item_feature_") if c != "item_feature_0"]
    check_not_null(items, categorical, path)
    dummies, _ = one_hot(items, categorical, drop_first=False)
    first = numbers(items["item_feature_0"], "item_feature_0", path)
    return np.column_stack([first, dummies])[_item_order(items["item_id"], path)], len(items)


def _item_order(item_id: pd.Series, path: str | Path) -> np.ndarray:
    """The row order that sorts ``item_id``, after checking the ids are exactly 0 .. n-1."""
    ids = numbers(item_id, "item_id", path)
    order = np.argsort(ids, kind="stable")
    wrong = ids[order] != np.arange(len(ids))
    if wrong.any():
        place = int(np.flatnonzero(wrong)[0])
        raise LogError(
            path,
            f"item ids must be 0 .. {len(ids) - 1}, each once; sorted, id {ids[order][place]:g} sits at place {place}",
            column="item_id",
        )
    return order


def _numbered(columns: pd.Index, prefix: str) -> list[str]:
    """The columns named ``prefix`` + a number, ordered by the number."""
    found = [(int(str(c)[len(prefix) :]), str(c)) for c in columns if re.fullmatch(re.escape(prefix) + r"\d+", str(c))]
    return [c for _, c in sorted(found)]
