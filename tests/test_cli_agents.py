"""``retentionrl train`` and ``retentionrl evaluate`` through the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from retentionrl.cli.main import app
from retentionrl.simulators.world.config import WorldConfig
from retentionrl.simulators.world.logs import write_world_logs

runner = CliRunner()


def flat(text: str) -> str:
    """CLI output with rich's box drawing and line wrapping removed."""
    return " ".join(text.replace("│", " ").split())


def train_args(algo: str, steps: int, out: Path, *more: str) -> list[str]:
    """``retentionrl train`` on the world with 16 shoppers per step, on CPU, quietly."""
    options = f"--algo {algo} --steps {steps} --num-envs 16 --device cpu --no-progress".split()
    return ["train", *options, "--out", str(out), *more]


def test_train_then_evaluate_the_run_in_the_world(tmp_path: Path) -> None:
    out = tmp_path / "ppo"
    result = runner.invoke(app, train_args("ppo", 1024, out))
    assert result.exit_code == 0, result.output
    assert (
        "trained ppo for 1,024 steps" in result.output
        and f"tensorboard --logdir {out / 'tensorboard'}" in result.output
    )
    assert (out / "policy.safetensors").exists() and (out / "config.json").exists()
    result = runner.invoke(app, ["evaluate", "--policy", str(out), "--env", "world", "--users", "200", "--seed", "1"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.startswith("policy"))
    row = next(line for line in result.stdout.splitlines() if line.startswith("ppo "))
    assert header.split()[:4] == ["policy", "return_visits", "active_at_horizon", "profit"]
    assert row.startswith("ppo") and "[" in row


def test_evaluate_baselines_fit_on_logs(tmp_path: Path) -> None:
    logs = tmp_path / "logs.parquet"
    write_world_logs(WorldConfig(), 300, 120, 0, logs)
    for name in ("popularity", "random", "never-coupon"):
        result = runner.invoke(app, ["evaluate", "--policy", name, "--logs", str(logs), "--users", "100", "--json"])
        assert result.exit_code == 0, result.output
        assert '"return_visits"' in result.output


def test_evaluate_rejects_bad_arguments(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--policy", "popularity", "--users", "10"])
    assert result.exit_code != 0 and "fit on logs: give --logs PATH" in flat(result.output)
    result = runner.invoke(app, ["evaluate", "--policy", "nope"])
    assert result.exit_code != 0 and "is not a trained policy folder, a baseline" in str(result.exception)
    result = runner.invoke(app, ["evaluate", "--policy", "random", "--env", "simulator"])
    assert result.exit_code != 0 and "--env simulator needs --simulator DIR" in flat(result.output)


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """SIGKILL a training process after its first checkpoint, then --resume it."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "dqn"
    cmd = [
        sys.executable,
        "-m",
        "retentionrl.cli.main",
        *train_args("dqn", 1_000_000, out, "--checkpoint-every", "512"),
    ]
    proc = subprocess.Popen(
        cmd, cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not pointer.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads(pointer.read_text())["num_timesteps"]
    assert saved >= 512
    target = saved + 512
    result = runner.invoke(app, train_args("dqn", target, out, "--resume"))
    assert result.exit_code == 0, result.output
    assert f"trained dqn for {target:,} steps" in result.output
    assert json.loads(pointer.read_text())["num_timesteps"] == target
    assert [p.name for p in (out / "tensorboard").iterdir()] == ["dqn_1"]
