"""Random -> BTS on the real Open Bandit Dataset sample (skipped when the data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retentionrl.evaluation.bandit import IPS, SNIPS, BanditInputs, DoublyRobust
from retentionrl.evaluation.reward_models import logistic_reward_model

OBD = Path(__file__).resolve().parents[2] / "shared" / "data" / "obd"
pytestmark = pytest.mark.skipif(not (OBD / "random" / "all").is_dir(),
                                reason=f"Open Bandit Dataset sample not found at {OBD} (see shared/data/README.md)")


def test_random_to_bts_is_close_to_the_on_policy_value():
    from retentionrl.interactions.adapters import read_bts_action_dist, read_obd

    random_log = read_obd(OBD / "random" / "all")
    truth = float(read_obd(OBD / "bts" / "all").reward.mean())
    assert truth == pytest.approx(0.0042, abs=5e-5)
    dist = read_bts_action_dist(OBD / "bts_action_dist_all.csv")
    action_dist = np.broadcast_to(dist, (random_log.n_rounds,) + dist.shape)
    q = logistic_reward_model(random_log.context, random_log.action, random_log.reward, random_log.n_actions,
                              random_log.position, random_log.len_list, random_log.action_context, n_folds=2)
    inputs = BanditInputs.prepare(random_log.reward, random_log.action, random_log.propensity, action_dist,
                                  random_log.position, q)
    for est in (IPS(), SNIPS(), DoublyRobust()):
        value = est._checked_terms(inputs).value()
        # obp's mean relative errors on this sample are about 0.3 for these three
        assert abs(value - truth) / truth < 0.8, (est.name, value)
    # IPS by hand: mean of pi_e(a_i | k_i) / p_i * click_i
    manual = np.mean(dist[random_log.action, random_log.position] / random_log.propensity * random_log.reward)
    assert IPS()._checked_terms(inputs).value() == pytest.approx(manual)
