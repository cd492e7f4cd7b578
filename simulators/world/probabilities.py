"""The world's own response probabilities at every visit it logs: the best any model can do.

:func:`write_world_logs_with_truth` writes the same log as
:func:`retentionrl.simulators.world.logs.write_world_logs` (same arguments, same bytes) and returns the
true probabilities the world drew each logged visit's responses from
(:meth:`retentionrl.simulators.world.simulator.GroundTruthWorld.response_probabilities`):

* ``p_click``, the click probability;
* ``p_buy_click``, the purchase probability after a click (no click, no purchase);
* ``p_purchase`` :math:`= p_{click}\\, p_{buy|click}`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs


def write_world_logs_with_truth(
    config: WorldConfig, n_users: int, days: int, seed: int, out_path: str | Path, *, logging_policy: str = "softmax"
) -> pd.DataFrame:
    """Write the world log (as ``write_world_logs``) and return its true probabilities.

    :returns: one row per logged visit: ``user_id`` (as in the log), ``session_id`` (the
        visit's number in the lifetime), ``p_click``, ``p_buy_click``, ``p_purchase``.
    """
    summary = write_world_logs(config, n_users, days, seed, out_path, logging_policy=logging_policy, with_truth=True)
    return summary.truth
