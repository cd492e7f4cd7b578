"""Simulator ensembles: each shopper slot in one member, reproducible, on-disk format checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from retentionrl.cli.simulator import simulator_app
from retentionrl.envs.factory import load_simulator
from retentionrl.simulators.learned.ensemble import SimulatorEnsemble, load_members, member_folders, write_ensemble
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from retentionrl.simulators.world.simulator import GroundTruthWorld


def _worlds(k: int) -> list[GroundTruthWorld]:
    return [GroundTruthWorld(WorldConfig(catalog_seed=s)) for s in range(k)]


def test_slots_are_spread_round_robin_and_each_member_steps_its_own_shoppers():
    members = _worlds(2)
    ens = SimulatorEnsemble(members)
    obs = ens.reset(5, seed=3)
    assert obs.shape == (5, ens.obs_dim)
    assert [len(m.days) for m in members] == [3, 2]  # slots 0, 2, 4 and 1, 3
    next_obs, out = ens.step(np.arange(5, dtype=np.int64))
    # member 1 is a world of catalog seed 1 reset with the seed the ensemble spawned for it
    alone = _worlds(2)[1]
    alone.reset(2, seed=int(np.random.SeedSequence(3).spawn(2)[1].generate_state(1)[0]))
    alone_obs, alone_out = alone.step(np.array([1, 3]))
    np.testing.assert_array_equal(next_obs[[1, 3]], alone_obs)
    for name, value in alone_out.as_dict().items():
        np.testing.assert_array_equal(out.as_dict()[name][[1, 3]], value, err_msg=name)
    np.testing.assert_array_equal(ens.days[[1, 3]], alone.days)


def test_same_seed_same_outcomes_and_members_differ():
    def run(seed: int) -> np.ndarray:
        ens = SimulatorEnsemble(_worlds(2))
        ens.reset(400, seed=seed)
        spend = []
        for _ in range(5):
            obs, out = ens.step(np.zeros(400, dtype=np.int64))
            spend.append(out.spend)
            ens.replace(out.churned)
        return np.array(spend)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))


def test_members_must_share_the_interface_and_actions_are_checked():
    with pytest.raises(ValueError, match="at least one member"):
        SimulatorEnsemble([])
    other = GroundTruthWorld(WorldConfig(horizon_days=30))
    with pytest.raises(ValueError, match="member 1 differs from member 0 in horizon_days"):
        SimulatorEnsemble([GroundTruthWorld(), other])
    ens = SimulatorEnsemble(_worlds(2))
    ens.reset(3, seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(3,\)"):
        ens.step(np.zeros(4, dtype=np.int64))


def test_the_folder_format_is_validated(tmp_path):
    (tmp_path / "member_0").mkdir()
    write_ensemble(tmp_path, ["member_0"])
    assert member_folders(tmp_path) == [tmp_path / "member_0"]
    with pytest.raises(ValueError, match="are not folders there"):
        write_ensemble(tmp_path, ["member_0", "member_9"])
    (tmp_path / "ensemble.json").write_text(json.dumps({"format": "other", "members": ["member_0"]}))
    with pytest.raises(ValueError, match="ensemble.json: not a simulator ensemble"):
        member_folders(tmp_path)
    (tmp_path / "ensemble.json").write_text(
        json.dumps({"format": "retentionrl-simulator-ensemble", "members": ["../elsewhere"]})
    )
    with pytest.raises(ValueError, match="plain folder names"):
        member_folders(tmp_path)
    assert member_folders(tmp_path / "member_0") == [tmp_path / "member_0"]  # a plain simulator: one member


def test_simulator_fit_with_seeds_writes_an_ensemble_that_loads_as_one_simulator(tmp_path):
    logs = tmp_path / "world.parquet"
    write_world_logs(WorldConfig(), 200, 45, 0, logs)
    folder = tmp_path / "ens"
    args = ["fit", "--logs", str(logs), "--out", str(folder), "--epochs", "1", "--device", "cpu", "--no-progress"]
    args.append("--no-ray")  # in turn, in this process (the members fitted on Ray: tests/test_tune.py)
    bad = CliRunner().invoke(simulator_app, [*args, "--seeds", "0,x"])
    assert bad.exit_code == 2 and "--seeds" in bad.output and not folder.exists()
    result = CliRunner().invoke(simulator_app, [*args, "--seeds", "3,4"])
    assert result.exit_code == 0, result.output
    fits = [json.loads((folder / f"member_{k}" / "config.json").read_text())["card"]["fit_config"] for k in range(2)]
    assert [f["seed"] for f in fits] == [3, 4] and all(f["bootstrap"] for f in fits)  # bootstrap by default
    sim = load_simulator(folder, device="cpu")
    assert isinstance(sim, SimulatorEnsemble) and len(sim.members) == 2
    first, second = load_members(folder, device="cpu")
    assert sim.card.action_map == first.card.action_map
    assert not torch.equal(first.model.head_out.weight, second.model.head_out.weight)
    obs = sim.reset(6, seed=0)
    _, out = sim.step(np.zeros(6, dtype=np.int64))
    assert obs.shape == (6, sim.obs_dim) and out.gap_days.shape == (6,)


def test_a_single_simulator_loader_names_an_ensemble_folder_for_what_it_is(tmp_path):
    from retentionrl.simulators.learned.checkpoint import CheckpointError
    from retentionrl.simulators.learned.simulator import LearnedSimulator

    (tmp_path / "member_0").mkdir()
    write_ensemble(tmp_path, ["member_0"])
    with pytest.raises(CheckpointError, match="ensemble.json: this folder is an ensemble of simulators"):
        LearnedSimulator.load(tmp_path)
