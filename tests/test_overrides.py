"""Config fields set by name (:mod:`retentionrl.core.overrides`) and the CLI's ``--set`` / ``--fields``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retentionrl.agents.config import TrainConfig
from retentionrl.cli.agents import TRAIN_OPTIONS
from retentionrl.cli.main import app
from retentionrl.core.overrides import describe_fields, field_docs, parse_assignments, with_overrides
from retentionrl.simulators.learned.config import FitConfig


@pytest.mark.parametrize("cls", [TrainConfig, FitConfig])
def test_every_field_says_what_it_does(cls):
    """--fields and the sweep docs read these: a field added without a docstring fails here."""
    docs = field_docs(cls)
    assert list(docs) == [f.name for f in dataclasses.fields(cls)]
    assert [name for name, doc in docs.items() if not doc] == []


def test_values_are_read_as_yaml_and_converted_to_the_field_types():
    values = parse_assignments(["net_arch=[16, 8]", "ppo_ent_coef=2e-2", "gamma=1", "algo=dqn"])
    config = with_overrides(TrainConfig(), values, source="--set")
    assert config.net_arch == (16, 8) and isinstance(config.net_arch, tuple)
    assert config.ppo_ent_coef == 0.02 and config.gamma == 1.0 and isinstance(config.gamma, float)
    assert config.algo == "dqn"
    assert dataclasses.replace(config, net_arch=TrainConfig.net_arch, ppo_ent_coef=0.01, gamma=0.95, algo="ppo") == (
        TrainConfig()
    )


@pytest.mark.parametrize(
    ("values", "fixed", "match"),
    [
        ({"learning_rat": 1.0}, None, r"src: unknown field 'learning_rat' of TrainConfig \(known: algo, "),
        ({"total_steps": 9}, {"total_steps": "--steps"}, r"src: total_steps is set by --steps"),
        ({"ppo_epochs": "many"}, None, r"src: ppo_epochs: .*integer.* \(got 'many'\)"),
        ({"ppo_head": "tree"}, None, r"src: ppo_head must be one of"),  # the dataclass's own check
        ({"learning_rate": -1.0}, None, r"src: learning_rate must be > 0"),
    ],
)
def test_bad_values_name_the_source_and_field(values, fixed, match):
    config = TrainConfig()
    with pytest.raises(ValueError, match=match):
        with_overrides(config, values, source="src", fixed=fixed)
    assert config == TrainConfig()  # frozen: the caller's config is never changed


@pytest.mark.parametrize(
    ("items", "match"),
    [(["gamma"], r"--set 'gamma': expected NAME=VALUE"), (["gamma=1", "gamma=2"], r"gamma is set twice")],
)
def test_bad_assignments(items, match):
    with pytest.raises(ValueError, match=match):
        parse_assignments(items)


def test_fields_lists_what_set_reaches():
    listed = {name for name, _, _ in describe_fields(TrainConfig, exclude=TRAIN_OPTIONS)}
    assert "ppo_ent_coef" in listed and "net_arch" in listed and not listed & set(TRAIN_OPTIONS)
    result = CliRunner().invoke(app, ["train", "--fields"])
    assert result.exit_code == 0, result.output
    assert "ppo_ent_coef = 0.01\n    PPO: entropy bonus" in result.output and "total_steps" not in result.output


def test_train_set_reaches_the_saved_config(tmp_path: Path):
    out = tmp_path / "run"
    args = ["train", "--steps", "256", "--num-envs", "8", "--out", str(out), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(
        app, [*args, "--set", "ppo_n_steps=32", "--set", "ppo_batch_size=64", "--set", "net_arch=[16, 16]"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["ppo_n_steps"] == 32 and saved["net_arch"] == [16, 16]
