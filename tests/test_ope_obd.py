"""Random -> BTS on the real Open Bandit Dataset sample (skipped when the data is absent), and
what experiments/ope_obd.py prints: its campaign's files, external figures only where they apply."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.ope_obd import OBP_SMALL_SAMPLE, campaign_files, main, table
from retentionrl.evaluation.bandit import IPS, SNIPS, BanditInputs, DoublyRobust
from retentionrl.evaluation.reward_models import logistic_reward_model

OBD = Path(__file__).resolve().parents[2] / "shared" / "data" / "obd"
needs_obd = pytest.mark.skipif(
    not (OBD / "random" / "all").is_dir(),
    reason=f"Open Bandit Dataset sample not found at {OBD} (see shared/data/README.md)",
)


@needs_obd
def test_campaign_all_files_are_where_the_study_reads_them() -> None:
    assert all(path.is_file() for path in campaign_files(OBD, "all"))


def test_missing_campaign_file_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "random" / "all").mkdir(parents=True)  # a folder holding campaign "all" only
    with pytest.raises(SystemExit) as stop:
        main(["--data", str(tmp_path), "--campaign", "men", "--resamples", "1"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {tmp_path / 'random' / 'men' / 'men.csv'}: no such file (--campaign men reads ")
    assert "bts_action_dist_men.csv" in lines[0]


def test_external_reference_only_for_its_campaign_and_sample() -> None:
    assert OBP_SMALL_SAMPLE.applies_to("all", 10_000)
    assert not OBP_SMALL_SAMPLE.applies_to("men", 10_000)
    assert not OBP_SMALL_SAMPLE.applies_to("all", 1_000_000)  # a larger log of campaign "all" is not the sample
    assert "st-tech/zr-obp" in OBP_SMALL_SAMPLE.source and "campaign 'all'" in OBP_SMALL_SAMPLE.source
    frame = pd.DataFrame({"estimator": ["dm", "dm", "ips", "ips"], "rel_error": [0.1, 0.3, 0.2, 0.4]})
    assert list(table(frame).columns) == ["ours_mean", "ours_sd", "ours_se"]
    shown = table(frame, OBP_SMALL_SAMPLE)
    assert shown["obp_external"].tolist() == [0.155, 0.309]
    assert shown["ours_mean"].tolist() == pytest.approx([0.2, 0.3])


@needs_obd
def test_random_to_bts_is_close_to_the_on_policy_value():
    from retentionrl.interactions.adapters import read_bts_action_dist, read_obd

    random_log = read_obd(OBD / "random" / "all")
    truth = float(read_obd(OBD / "bts" / "all").reward.mean())
    assert truth == pytest.approx(0.0042, abs=5e-5)
    dist = read_bts_action_dist(OBD / "bts_action_dist_all.csv")
    action_dist = np.broadcast_to(dist, (random_log.n_rounds,) + dist.shape)
    q = logistic_reward_model(
        random_log.context,
        random_log.action,
        random_log.reward,
        random_log.n_actions,
        random_log.position,
        random_log.len_list,
        random_log.action_context,
        n_folds=2,
    )
    inputs = BanditInputs.prepare(
        random_log.reward, random_log.action, random_log.propensity, action_dist, random_log.position, q
    )
    for est in (IPS(), SNIPS(), DoublyRobust()):
        value = est._checked_terms(inputs).value()
        # obp's mean relative errors on this sample are about 0.3 for these three
        assert abs(value - truth) / truth < 0.8, (est.name, value)
    # IPS by hand: mean of pi_e(a_i | k_i) / p_i * click_i
    manual = np.mean(dist[random_log.action, random_log.position] / random_log.propensity * random_log.reward)
    assert IPS()._checked_terms(inputs).value() == pytest.approx(manual)
