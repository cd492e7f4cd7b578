"""Every ``retentionrl`` command keeps the error promise, run as a user runs it (a subprocess
through ``main()``): bad input ends with exit status 2 and exactly one ``error: ...`` line
naming the file, column, key or option, no traceback, nothing written and the inputs untouched.

Each case fails before any simulation, fit or training starts.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.conftest import error_line, run_cli, small_log

CHECKPOINT = "agent_run/checkpoints/step_000000000064"
"""A training checkpoint folder: resumable state of an agent, not a learned simulator."""

CASES: list[tuple[str, list[str], list[str]]] = [
    # (id, arguments, what the error line must name); {in}: the inputs folder, {out}: a path not yet there
    (
        "data-describe-session-gap",
        ["data", "describe", "{in}/events.parquet", "--session-gap", "banana", "--no-plot"],
        ["--session-gap", "banana"],
    ),
    ("world-logs-users", ["world", "logs", "--out", "{out}/logs.parquet", "--users", "0"], ["--users"]),
    ("world-evaluate-policy", ["world", "evaluate", "--policy", "always-coupons"], ["--policy", "always-coupons"]),
    (
        "simulator-fit-column",
        ["simulator", "fit", "--logs", "{in}/no_user.csv", "--out", "{out}"],
        ["{in}/no_user.csv", "user_id"],
    ),
    (
        "simulator-fit-seeds",
        ["simulator", "fit", "--logs", "{in}/events.parquet", "--out", "{out}", "--seeds", "0,x"],
        ["--seeds", "0,x"],
    ),
    (
        "simulator-report-checkpoint",
        ["simulator", "report", "--model", "{in}/" + CHECKPOINT, "--logs", "{in}/events.parquet", "--out", "{out}"],
        ["{in}/" + CHECKPOINT, "not a learned-simulator"],
    ),
    ("train-algo", ["train", "--algo", "sac", "--out", "{out}"], ["algo", "sac"]),
    ("train-device", ["train", "--device", "gpu0", "--out", "{out}"], ["--device", "gpu0"]),
    ("train-unknown-option", ["train", "--stpes", "10", "--out", "{out}"], ["--stpes"]),
    ("train-set-unknown", ["train", "--set", "ppo_ent=0.1", "--out", "{out}"], ["--set", "ppo_ent", "ppo_ent_coef"]),
    ("train-set-type", ["train", "--set", "ppo_epochs=many", "--out", "{out}"], ["--set", "ppo_epochs", "many"]),
    ("train-set-fixed", ["train", "--set", "total_steps=9", "--out", "{out}"], ["--set", "total_steps", "--steps"]),
    (
        "simulator-fit-set",
        ["simulator", "fit", "--logs", "{in}/events.parquet", "--out", "{out}", "--set", "hazard_knots=1"],
        ["--set", "hazard_knots", ">= 2"],
    ),
    (
        "train-simulator-checkpoint",
        ["train", "--simulator", "{in}/" + CHECKPOINT, "--steps", "64", "--out", "{out}"],
        ["{in}/" + CHECKPOINT, "not a learned-simulator"],
    ),
    (
        "train-resume-state",
        ["train", "--resume", "--out", "{in}/agent_run", "--no-progress"],
        ["{in}/" + CHECKPOINT + "/state.json", "missing key(s)", "n_updates"],
    ),
    (
        "train-resume-config",
        ["train", "--resume", "--out", "{in}/bad_config_run", "--no-progress"],
        ["{in}/bad_config_run/config.json", "gamma", "expected a number"],
    ),
    (
        "evaluate-policy-key",
        ["evaluate", "--policy", "{in}/policy_no_key"],
        ["{in}/policy_no_key/policy.json", "'n_arms'"],
    ),
    (
        "evaluate-baseline-logs",
        ["evaluate", "--policy", "popularity", "--logs", "{in}/no_user.csv"],
        ["{in}/no_user.csv", "user_id"],
    ),
    (
        "ope-logs-missing",
        ["ope", "--logs", "{in}/event.parquet", "--policy", "uniform", "--out", "{out}"],
        ["--logs", "{in}/event.parquet"],
    ),
    (
        "ope-policy-corrupt",
        ["ope", "--logs", "{in}/events.parquet", "--policy", "{in}/policy_corrupt", "--out", "{out}"],
        ["{in}/policy_corrupt/policy.json", "unreadable"],
    ),
    (
        "ope-simulator-checkpoint",
        [
            "ope",
            "--logs",
            "{in}/events.parquet",
            "--policy",
            "uniform",
            "--out",
            "{out}",
            "--simulator",
            "{in}/" + CHECKPOINT,
        ],
        ["{in}/" + CHECKPOINT, "not a learned-simulator"],
    ),
    (
        "certify-mix",
        ["certify", "--logs", "{in}/events.parquet", "--policy", "uniform", "--out", "{out}", "--mix", "2"],
        ["--mix", "'2'"],
    ),
    (
        "certify-policy-key",
        ["certify", "--logs", "{in}/events.parquet", "--policy", "{in}/policy_no_key", "--out", "{out}"],
        ["{in}/policy_no_key/policy.json", "'n_arms'"],
    ),
    (
        "serve-policy-key",
        ["serve", "--policy", "{in}/policy_no_key", "--store", "{out}/store.sqlite", "--decision-log", "{out}/log"],
        ["{in}/policy_no_key/policy.json", "'n_arms'"],
    ),
    (
        "export-format",
        ["export", "--policy", "{in}/policy_no_key", "--format", "tflite", "--out", "{out}/p.onnx"],
        ["--format", "tflite"],
    ),
    ("run-yaml", ["run", "{in}/broken.yaml"], ["{in}/broken.yaml", "not valid YAML"]),
    ("run-unknown-key", ["run", "{in}/typo.yaml"], ["{in}/typo.yaml", "'agents.total_stpes'"]),
    ("quickstart-device", ["quickstart", "--device", "tpu", "--out", "{out}"], ["--device", "tpu"]),
    ("quickstart-out-is-file", ["quickstart", "--out", "{in}/events.parquet"], ["--out", "{in}/events.parquet"]),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Realistic bad inputs, written once: a log without a column, a broken and a mistyped
    config, policy folders with incomplete or truncated metadata, an agent run whose
    checkpoint state lacks keys."""
    folder = tmp_path_factory.mktemp("inputs")
    small_log().to_parquet(folder / "events.parquet", index=False)
    small_log().drop(columns="user_id").to_csv(folder / "no_user.csv", index=False)
    (folder / "broken.yaml").write_text("agents: {total_steps: 1000\nseed: 0\n")
    (folder / "typo.yaml").write_text("agents:\n  total_stpes: 1000\n")
    meta = {"algo": "ppo", "n_features": 12, "coupon_levels": [0.0, 0.1], "net_arch": [64, 64], "epsilon": 0.0}
    tensors = {"mlp_extractor.policy_net.0.weight": np.zeros((64, 12), np.float32)}
    for name, text in (("policy_no_key", json.dumps(meta)), ("policy_corrupt", json.dumps(meta)[:40])):
        (folder / name).mkdir()
        (folder / name / "policy.json").write_text(text)
        save_file(tensors, folder / name / "policy.safetensors")
    for run, config in (
        ("agent_run", {"algo": "ppo", "num_envs": 8, "total_steps": 1024}),
        ("bad_config_run", {"algo": "ppo", "gamma": "x"}),
    ):
        checkpoint = folder / CHECKPOINT.replace("agent_run", run)
        checkpoint.mkdir(parents=True)
        (folder / run / "config.json").write_text(json.dumps(config))
        (checkpoint.parent / "latest.json").write_text(json.dumps({"checkpoint": checkpoint.name, "num_timesteps": 64}))
        (checkpoint / "state.json").write_text(json.dumps({"num_timesteps": 64}))
        save_file(tensors, checkpoint / "policy.safetensors")
    return folder


def _digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file below ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(("args", "named"), [pytest.param(a, n, id=i) for i, a, n in CASES])
def test_bad_input_is_one_error_line(inputs: Path, tmp_path: Path, args: list[str], named: list[str]) -> None:
    out = tmp_path / "out"

    def filled(text: str) -> str:
        return text.replace("{in}", str(inputs)).replace("{out}", str(out))

    before = _digests(inputs)
    line = error_line(run_cli(*map(filled, args), cwd=tmp_path))
    for thing in map(filled, named):
        assert thing in line, line
    assert _digests(inputs) == before
    assert not list(tmp_path.iterdir()), "nothing is written on bad input"


def test_the_cli_starts_without_torch_scipy_or_stable_baselines3():
    """``retentionrl --help`` and every argument check run before the heavy libraries load:
    the command modules import them inside the commands, after the checks."""
    code = (
        "import sys, retentionrl.cli.main; "
        "print(sorted(m for m in ('torch', 'scipy.stats', 'stable_baselines3', 'ray') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_a_bad_train_argument_is_refused_before_torch_loads(tmp_path: Path):
    """The train command checks its config before importing torch: a wrong --algo fails fast."""
    code = (
        "import sys\n"
        "from retentionrl.cli.main import main\n"
        "try:\n    main(['train', '--algo', 'sac', '--out', 'out'])\n"
        "except SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr
    assert "algo" in result.stderr and "sac" in result.stderr
