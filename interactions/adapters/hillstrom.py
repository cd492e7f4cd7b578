"""MineThatData E-Mail Analytics Challenge (Hillstrom, 2008) → one-decision bandit feedback.

64,000 customers were randomized with probability 1/3 each to one of three arms; each row is
one round:

==========  ================================================================================
field       from
==========  ================================================================================
action      ``segment``: 0 = ``"No E-Mail"``, 1 = ``"Mens E-Mail"``, 2 = ``"Womens E-Mail"``
            (:data:`ACTIONS`, in index order)
propensity  1/3 for every round (the randomization)
reward      ``visit`` (0/1), ``conversion`` (0/1) or ``spend`` (dollars), over two weeks
context     ``recency, history, mens, womens, newbie`` followed by one-hot columns (all levels,
            sorted) of ``history_segment, zip_code, channel``, named ``"column=level"``
==========  ================================================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from retentionrl.core.errors import LogError
from retentionrl.interactions.adapters._common import check_not_null, numbers, one_hot
from retentionrl.interactions.bandit import BanditFeedback
from retentionrl.interactions.tables import read_table

ACTIONS: tuple[str, ...] = ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
"""Arm names by action index."""

REWARDS: tuple[str, ...] = ("visit", "conversion", "spend")
"""Outcome columns that can be the reward."""

NUMERIC_CONTEXT: tuple[str, ...] = ("recency", "history", "mens", "womens", "newbie")
CATEGORICAL_CONTEXT: tuple[str, ...] = ("history_segment", "zip_code", "channel")

SIGNATURE_COLUMNS: tuple[str, ...] = NUMERIC_CONTEXT + CATEGORICAL_CONTEXT + ("segment",) + REWARDS
"""Columns that identify a Hillstrom file (all of them are read)."""

PROPENSITY = 1.0 / 3.0


def read_hillstrom(path: str | Path, reward: Literal["visit", "conversion", "spend"] = "visit") -> BanditFeedback:
    """Read the Hillstrom CSV (or Parquet) as bandit feedback with 3 actions, one position.

    :param reward: which outcome is the reward, one of :data:`REWARDS`.
    :raises ValueError: ``reward`` is not one of :data:`REWARDS`.
    :raises LogError: a missing column, a null, or a ``segment`` that is not an arm.
    """
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {list(REWARDS)}, got {reward!r}")
    frame = read_table(path, columns=SIGNATURE_COLUMNS)
    check_not_null(frame, SIGNATURE_COLUMNS, path)

    segment = frame["segment"].astype("str").str.strip()
    action = segment.map({name: index for index, name in enumerate(ACTIONS)})
    unknown = action.isna().to_numpy()
    if unknown.any():
        raise LogError.for_rows(path, f"not an arm; expected one of {list(ACTIONS)}", "segment", unknown, segment)

    dummies, dummy_names = one_hot(frame, CATEGORICAL_CONTEXT, drop_first=False)
    numeric = np.column_stack([numbers(frame[name], name, path) for name in NUMERIC_CONTEXT])
    n = len(frame)
    return BanditFeedback(
        n_actions=len(ACTIONS),
        action=action.to_numpy(dtype=np.int64),
        reward=numbers(frame[reward], reward, path),
        propensity=np.full(n, PROPENSITY),
        context=np.hstack([numeric, dummies]),
        reward_name=reward,
        source=str(path),
        context_names=NUMERIC_CONTEXT + tuple(dummy_names),
    )
