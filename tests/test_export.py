"""Policy export: the ONNX and TorchScript files compute the deployed policy's probabilities."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from retentionrl.agents.config import TrainConfig
from retentionrl.agents.training import load_policy, train
from retentionrl.core.actions import ActionSpace
from retentionrl.interactions.decisions import LoggedDecisions
from retentionrl.interactions.io import read_events
from retentionrl.serve import export
from retentionrl.serve.export import METADATA_FILE, TOLERANCE, ExportMismatchError, export_policy
from retentionrl.serve.policy import ServedPolicy
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs
from tests.conftest import run_cli

HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
FORMAT_PARAMS = [
    pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="needs pip install 'retentionrl[export]'")),
    "torchscript",
]

TINY = dict(simulator="world", num_envs=4, device="cpu", seed=0, checkpoint_every=10_000)
PPO = dict(algo="ppo", total_steps=256, ppo_n_steps=64, ppo_batch_size=128, ppo_epochs=1)
DQN = dict(algo="dqn", total_steps=300, dqn_learning_starts=100, dqn_buffer_size=1_000, dqn_gradient_steps=1)
CASES = {
    "ppo-greedy": dict(PPO, deploy="greedy"),
    "ppo-stochastic": dict(PPO, deploy="stochastic"),
    "ppo-factorised-greedy": dict(PPO, ppo_head="factorised", deploy="greedy"),
    "ppo-factorised-stochastic": dict(PPO, ppo_head="factorised", deploy="stochastic"),
    "dqn-stochastic": dict(DQN, deploy="stochastic"),
    "dqn-greedy": dict(DQN, deploy="greedy"),
}
A = 80  # the world's 20 item groups x 4 coupon levels
FLOOR = 0.005  # A p = 0.4 of the mass spread evenly


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny policies trained on the world, one folder per case."""
    root = tmp_path_factory.mktemp("policies")
    for name, config in CASES.items():
        train(TrainConfig(**TINY, **config), root / name, progress=False)
    return {name: root / name for name in CASES}


@pytest.fixture(scope="module")
def logged_obs(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The states before every logged visit of 200 world shoppers over 60 days."""
    path = tmp_path_factory.mktemp("logs") / "logs.parquet"
    write_world_logs(WorldConfig(), n_users=200, days=60, seed=1, out_path=path)
    return LoggedDecisions.from_log(read_events(path)).obs


def run_exported(path: Path, fmt: str, obs: np.ndarray) -> np.ndarray:
    """The exported file's ``action_probs`` of ``obs``, loaded as an embedder would."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["action_probs"], {"obs": obs})[0]
    return torch.jit.load(str(path))(torch.from_numpy(obs)).detach().numpy()


def embedded_metadata(path: Path, fmt: str) -> dict[str, object]:
    """The metadata in an exported file, decoded."""
    if fmt == "onnx":
        import onnx

        return {p.key: json.loads(p.value) for p in onnx.load(str(path)).metadata_props}
    extra = {METADATA_FILE: ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra[METADATA_FILE])


@pytest.mark.parametrize("floor", [0.0, FLOOR])
@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
@pytest.mark.parametrize("case", CASES)
def test_export_computes_the_policy_on_logged_states(
    policies: dict[str, Path], logged_obs: np.ndarray, tmp_path: Path, case: str, fmt: str, floor: float
) -> None:
    out = tmp_path / f"policy.{fmt}"
    summary = export_policy(policies[case], fmt, out, min_propensity=floor, obs=logged_obs)
    expected = (1.0 - A * floor) * load_policy(policies[case]).action_probs(logged_obs) + floor
    got = run_exported(out, fmt, logged_obs)
    assert got.shape == (len(logged_obs), A) and got.dtype == np.float32
    diff = np.abs(got - expected).max()
    assert diff <= TOLERANCE and summary.max_abs_diff == pytest.approx(diff, abs=1e-12), (diff, summary)
    assert (summary.n_features, summary.n_actions, summary.n_checked) == (31, A, len(logged_obs))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert got.min() >= floor - 1e-7
    if CASES[case]["deploy"] == "greedy":  # one action takes all the mass left by the floor
        np.testing.assert_allclose(got.max(axis=1), 1.0 - (A - 1) * floor, atol=1e-6)
    np.testing.assert_allclose(run_exported(out, fmt, logged_obs[:1]), got[:1], atol=1e-7)  # any batch size


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_default_check_runs_on_world_states_and_the_file_carries_the_contract(
    policies: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    folder = policies["dqn-stochastic"]
    summary = export_policy(folder, fmt, tmp_path / "policy.bin", min_propensity=FLOOR)
    assert summary.n_checked == export.CHECK_SHOPPERS * export.CHECK_VISITS and summary.max_abs_diff <= TOLERANCE
    meta = json.loads((folder / "policy.json").read_text())
    embedded = embedded_metadata(summary.path, fmt)
    assert embedded == summary.metadata
    assert embedded["arms"] == meta["arms"] == [str(g) for g in range(20)]
    assert embedded["coupon_levels"] == meta["coupon_levels"]
    assert embedded["features"] == meta["observation"]["features"]
    assert (embedded["horizon_days"], embedded["spend_scale"]) == (90.0, 50.0)
    assert (embedded["algo"], embedded["deploy"], embedded["epsilon"]) == ("dqn", "stochastic", 0.05)
    assert embedded["min_propensity"] == FLOOR
    assert embedded["policy_version"] == ServedPolicy(folder, FLOOR).version  # what a service logs with each decision


def test_check_observations_are_world_states_where_the_policy_fits_the_world_else_uniform() -> None:
    world = export.check_observations(ActionSpace(20), 31)
    np.testing.assert_array_equal(world, export.check_observations(ActionSpace(20), 31))  # deterministic
    assert world.shape == (export.CHECK_SHOPPERS * export.CHECK_VISITS, 31) and world.dtype == np.float32
    assert (world[: export.CHECK_SHOPPERS, 0] == 0).all() and (
        world[export.CHECK_SHOPPERS :, 0] > 0
    ).any()  # log visits
    other = export.check_observations(ActionSpace(3, (0.0, 0.1)), 7)  # another shop's policy
    assert other.shape == (export.CHECK_SHOPPERS * export.CHECK_VISITS, 7) and 0 <= other.min() < other.max() < 1


def with_tensors(src: Path, dst: Path, zeroed: tuple[str, ...]) -> Path:
    """A copy of policy folder ``src`` whose tensors ``zeroed`` are all 0."""
    shutil.copytree(src, dst)
    tensors = load_file(dst / "policy.safetensors")
    save_file({k: torch.zeros_like(v) if k in zeroed else v for k, v in tensors.items()}, dst / "policy.safetensors")
    return dst


@pytest.mark.parametrize(
    ("case", "last_layer"),
    [
        ("dqn-stochastic", ("q_net.q_net.4.weight", "q_net.q_net.4.bias")),
        ("ppo-greedy", ("action_net.weight", "action_net.bias")),
        ("ppo-factorised-greedy", ("action_net.weight", "action_net.bias")),
    ],
)
@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_ties_go_to_the_first_action(
    policies: dict[str, Path], logged_obs: np.ndarray, tmp_path: Path, case: str, last_layer: tuple[str, ...], fmt: str
) -> None:
    """All scores equal: every argmax (numpy's, torch's, ONNX's) picks action 0."""
    folder = with_tensors(policies[case], tmp_path / "tied", last_layer)
    summary = export_policy(folder, fmt, tmp_path / "policy.bin", obs=logged_obs)
    got = run_exported(summary.path, fmt, logged_obs)
    best = 1.0 - 0.05 + 0.05 / A if case.startswith("dqn") else 1.0
    np.testing.assert_allclose(got[:, 0], best, atol=1e-7)
    assert summary.max_abs_diff <= TOLERANCE


def _without_floor(self: export.DeployedPolicy, obs: torch.Tensor) -> torch.Tensor:
    return self.head(obs)[0]


def _coupon_major(self: export._ActorProbs, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The factorised joint flattened coupon-major: index c * n_arms + g, the wrong order."""
    arm_logits, coupon_logits = self.logits(self.latent(self.features(obs))).split(list(self.factors), dim=1)
    arm, coupon = export._categorical_probs(arm_logits), export._categorical_probs(coupon_logits)
    return (coupon.unsqueeze(2) * arm.unsqueeze(1)).flatten(start_dim=1), arm.argmax(dim=1)


@pytest.mark.parametrize(
    ("case", "target", "broken", "floor"),
    [
        ("ppo-stochastic", export.DeployedPolicy, _without_floor, FLOOR),
        ("ppo-factorised-stochastic", export._ActorProbs, _coupon_major, 0.0),
    ],
    ids=["floor-dropped", "factors-swapped"],
)
@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_a_wrong_export_is_refused_and_not_written(
    policies: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    target: type,
    broken: object,
    floor: float,
    fmt: str,
) -> None:
    monkeypatch.setattr(target, "forward", broken)
    out = tmp_path / "policy.bin"
    with pytest.raises(ExportMismatchError, match=r"differs from the policy by up to .*nothing was written"):
        export_policy(policies[case], fmt, out, min_propensity=floor)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(fmt="tflite"), ValueError, r"fmt: expected one of onnx, torchscript, got 'tflite'"),
        (dict(min_propensity=0.02), ValueError, r"min_propensity: expected a number in \[0, 1/A\] = \[0, 0.0125\]"),
        (dict(min_propensity=-0.001), ValueError, r"min_propensity: .* got -0.001"),
        (dict(obs=np.zeros((3, 30), np.float32)), ValueError, r"obs: expected shape \(n >= 1, 31\), got \(3, 30\)"),
        (dict(obs=np.full((3, 31), np.nan, np.float32)), ValueError, r"obs: expected finite values"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    policies: dict[str, Path], tmp_path: Path, kwargs: dict, error: type, match: str
) -> None:
    args = dict(fmt="onnx", min_propensity=0.0) | kwargs
    with pytest.raises(error, match=match):
        export_policy(policies["ppo-greedy"], out=tmp_path / "policy.onnx", **args)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMAT_PARAMS)
def test_cli_writes_the_file_and_says_how_close_it_is(policies: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"policy.{fmt}"
    result = run_cli(
        "export",
        "--policy",
        str(policies["ppo-factorised-stochastic"]),
        "--format",
        fmt,
        "--out",
        str(out),
        "--min-propensity",
        "0.001",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out} ({fmt}, "), result.stdout
    assert "31 features -> 80 action probabilities; max |exported - policy| = " in lines[0]
    assert "on 2,048 observations" in lines[0]
    assert run_exported(out, fmt, np.zeros((2, 31), np.float32)).min() >= 0.001 - 1e-7


def test_onnx_without_its_extra_says_how_to_install_it(
    policies: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(
        ImportError, match=r"ONNX export needs onnx and onnxruntime .*pip install 'retentionrl\[export\]'"
    ):
        export_policy(policies["ppo-greedy"], "onnx", tmp_path / "policy.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_input_in_one_line(
    policies: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retentionrl.cli.main import main

    policy, missing = str(policies["ppo-greedy"]), tmp_path / "no" / "such"
    cases = [
        (["--policy", str(tmp_path)], f"error: {tmp_path}: not a trained policy folder (no policy.json)"),
        (
            ["--policy", policy, "--min-propensity", "0.5"],
            "error: --min-propensity: expected a number in [0, 1/A] = [0, 0.0125] for A = 80 actions, got 0.5",
        ),
        (
            ["--policy", policy, "--format", "tflite"],
            "error: --format: expected one of onnx, torchscript, got 'tflite'",
        ),
        (
            ["--policy", policy, "--out", str(missing / "p.pt")],
            f"error: {missing / 'p.pt'}: the folder {missing} does not exist",
        ),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", "--format", "onnx", "--out", str(tmp_path / "p.onnx"), *args])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.splitlines() == [message], (args, err)
    assert list(tmp_path.iterdir()) == []
