"""Sweeps (``retentionrl tune``): the search space checked by name, trials that give the same
numbers wherever they run and are never run twice, the best trial chosen by its validation
score alone; on Ray Tune: a local sweep interrupted and resumed, and a sweep on a running
``ray start --head`` cluster."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retentionrl.core.interval import Interval
from retentionrl.core.records import json_text
from retentionrl.pipeline.config import parse_config
from retentionrl.tune.config import SweepConfig, trial_config
from retentionrl.tune.sweep import SweepSummary, TrialRow, prepare, summarize
from retentionrl.tune.trial import TRIAL_FILE, TrialResult, run_trial, starts

REPO = Path(__file__).resolve().parents[1]
NEEDS_RAY = "Ray Tune is an optional extra (pip install -e '.[ray]'); the sweeps through Ray need it"
TINY = {
    "seed": 0,
    "device": "cpu",
    "horizon_days": 60,
    "world": {"users": 400, "days": 90},
    "simulator": {"epochs": 1, "patience": 1, "hidden_size": 16, "ensemble": 2},
    "agents": {"total_steps": 1000, "num_envs": 16, "checkpoint_every": 500},
    "evaluation": {"users": 100},
}


def _sweep(tmp_path: Path, **tune) -> SweepConfig:
    return parse_config({**TINY, "out": str(tmp_path / "sweep"), "tune": tune}, "sweep.yaml", SweepConfig)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"agents.lerning_rate": {"choice": [1e-3]}}, "unknown key 'agents.lerning_rate'"),
        ({"agents.learning_rate": {"uniform": [-1.0, 1.0]}}, "agents.learning_rate = -1.0: key 'agents': TrainConfig"),
        ({"simulator.seed": {"grid": [1, 2]}}, "seed is set by the top-level key seed"),
        ({"agents.algos": {"choice": [["dqn"]]}}, "search `algo`"),
        ({"world.users": {"choice": [10]}}, "key 'world.users' cannot be searched"),
        ({"algo": {"choice": ["a2c"]}}, "algo must be one of ppo, dqn"),
        ({"seed": {"grid": [1], "choice": [2]}}, "give exactly one of"),
        ({"agents.learning_rate": {"loguniform": [0.0, 1.0]}}, "loguniform needs low > 0"),
        ({"seed": {"randint": [3, 3]}}, "randint needs low < high"),
    ],
)
def test_a_bad_search_space_is_refused_by_key_before_any_trial(tmp_path, space, message):
    with pytest.raises(ValueError, match="^sweep.yaml: ") as info:
        _sweep(tmp_path, space=space)
    assert message in str(info.value)


def test_unknown_tune_keys_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key 'tune.smaples' \(known keys here: algo, samples"):
        parse_config({"tune": {"smaples": 3}}, "sweep.yaml", SweepConfig)


def test_a_trial_sets_its_keys_on_the_run_config(tmp_path):
    sweep = _sweep(tmp_path, space={"agents.learning_rate": {"loguniform": [1e-4, 1e-2]}})
    config, algo = trial_config(
        sweep, {"agents.learning_rate": 0.002, "seed": 7, "retention_weight": 0.25, "simulator.hidden_size": 8}
    )
    assert (algo, config.seed, config.retention_weight) == ("ppo", 7, 0.25)
    assert config.agents.config_fields()["learning_rate"] == 0.002
    assert config.simulator.config_fields()["hidden_size"] == 8
    assert config.agents.config_fields()["total_steps"] == TINY["agents"]["total_steps"]  # the rest kept
    assert trial_config(sweep, {"algo": "dqn"})[1] == "dqn"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The shared stages of a tiny sweep (world logs, fit / validation split, two simulators)."""
    return prepare(_sweep(tmp_path_factory.mktemp("tune")), echo=lambda _: None)


def test_the_validation_shoppers_are_apart_from_the_fit_and_the_heldout_ones(prepared):
    import pandas as pd

    out = prepared.sweep.out
    users = {
        name: set(pd.read_parquet(path, columns=["user_id"])["user_id"])
        for name, path in {
            "fit": prepared.fit_logs,
            "validation": out / "tune_split" / "validation.parquet",
            "heldout": out / "split" / "heldout.parquet",
        }.items()
    }
    assert all(users.values())
    assert not users["fit"] & users["validation"]
    assert not (users["fit"] | users["validation"]) & users["heldout"]
    assert len(users["validation"]) == pytest.approx(0.25 * (len(users["fit"]) + len(users["validation"])), abs=1)


def test_a_trial_gives_the_same_numbers_anywhere_and_is_not_run_twice(prepared, tmp_path):
    params = {"agents.learning_rate": 0.001, "seed": 3}
    first = run_trial(prepared, params, tmp_path / "a")
    again = run_trial(prepared, params, tmp_path / "b")
    assert json_text(first.validation) == json_text(again.validation) and json_text(first.truth) == json_text(
        again.truth
    )
    assert len(first.member_scores) == 2 and first.score == min(first.member_scores)  # the least favourable member
    assert not first.own_simulator  # the seed seeds the agent only: the shared simulator serves
    before = (tmp_path / "a" / TRIAL_FILE).stat().st_mtime_ns
    assert json_text(run_trial(prepared, params, tmp_path / "a")) == json_text(first)
    assert (tmp_path / "a" / TRIAL_FILE).stat().st_mtime_ns == before and starts(tmp_path / "a") == 2
    other = run_trial(prepared, {"agents.learning_rate": 0.01, "seed": 3}, tmp_path / "a")  # other params: redone
    assert other.params["agents.learning_rate"] == 0.01 and starts(tmp_path / "a") == 1


def test_a_trial_with_its_own_fit_settings_fits_its_own_simulator(prepared, tmp_path):
    result = run_trial(prepared, {"simulator.hidden_size": 8}, tmp_path / "t")
    assert result.own_simulator
    fitted = json.loads((tmp_path / "t" / "simulator" / "member_0" / "config.json").read_text())
    assert fitted["card"]["spec"]["hidden_size"] == 8


def _result(name: str, score: float, true_score: float) -> TrialResult:
    value = {"return_visits": Interval(score, score, score, 10), "profit": Interval(5.0, 4.0, 6.0, 10)}
    return TrialResult(
        trial=name,
        params={"seed": 0},
        algo="ppo",
        metric="reward",
        score=score,
        member_scores=[score],
        validation=value,
        truth=value,
        true_score=true_score,
        own_simulator=False,
        seconds=1.0,
    )


def test_the_best_trial_is_chosen_by_its_validation_score_never_by_truth(tmp_path):
    rows = [
        TrialRow("a", "done", {"seed": 0}, _result("a", 3.0, 9.0), 1),
        TrialRow("b", "done", {"seed": 1}, _result("b", 4.0, 1.0), 1),
        TrialRow("c", "error", {"seed": 2}, None, 1, "boom"),
        TrialRow("d", "done", {"seed": 3}, _result("d", 3.0, 2.0), 1),
    ]
    summary = summarize(rows, _sweep(tmp_path))
    assert summary.best == "b" and [r.trial for r in summary.trials] == ["b", "a", "d", "c"]  # a tie: by id
    summary.save(tmp_path)
    assert json_text(SweepSummary.load(tmp_path)) == json_text(summary)
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0].startswith("trial,status,seed,algo,score,true_score") and len(lines) == 5


def test_without_ray_tune_says_how_to_install_it(tmp_path, monkeypatch):
    from retentionrl.tune.sweep import INSTALL_HINT, run_sweep

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as where it is not installed
    with pytest.raises(ImportError, match=r"pip install 'retentionrl\[ray\]'"):
        run_sweep(_sweep(tmp_path))
    assert "Ray Tune" in INSTALL_HINT


def test_simulator_fit_on_ray_without_ray_says_how_to_install_it(prepared, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from retentionrl.cli.simulator import simulator_app

    monkeypatch.setitem(sys.modules, "ray", None)
    args = ["fit", "--logs", str(prepared.fit_logs), "--out", str(tmp_path / "e"), "--seeds", "0,1", "--ray"]
    result = CliRunner().invoke(simulator_app, [*args, "--epochs", "1", "--device", "cpu"])
    assert isinstance(result.exception, ImportError) and "pip install 'retentionrl[ray]'" in str(result.exception)
    assert not (tmp_path / "e").exists()


# ----------------------------------------------------------------------------- through Ray


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "RAY_USAGE_STATS_ENABLED": "0", **extra}


def _write_sweep(tmp_path: Path, grid: list[float], **tune) -> Path:
    path = tmp_path / "sweep.yaml"
    space = {"agents.learning_rate": {"grid": grid}}
    path.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "out"), "tune": {"space": space, **tune}}))
    return path


def _tune(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "retentionrl.cli.main", "tune", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    pytest.importorskip("ray", reason=NEEDS_RAY)
    config = _write_sweep(tmp_path, [3e-4, 1e-3, 3e-3], cpus_per_trial=2)  # one trial at a time on 2 CPUs
    env = _cli_env()
    proc = _tune(str(config), env=env)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # interrupt (Ctrl-C) once the first trial has finished
        seen.append(line)
        if "done (1 of 3)" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "--resume" in output
    interrupted = SweepSummary.load(tmp_path / "out")
    status = {row.trial: row.status for row in interrupted.trials}
    assert sorted(status.values()) == ["done", "unfinished", "unfinished"], output
    (finished,) = [t for t, s in status.items() if s == "done"]

    resumed = subprocess.run(
        [sys.executable, "-m", "retentionrl.cli.main", "tune", str(config), "--resume"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = SweepSummary.load(tmp_path / "out")
    assert sorted(row.trial for row in summary.trials) == sorted(status)
    assert all(row.status == "done" for row in summary.trials)
    assert starts(tmp_path / "out" / "trials" / finished) == 1  # never started again
    best = max(summary.trials, key=lambda r: r.result.score if r.result else -1.0)
    assert summary.best == best.trial and f"best trial:  {best.trial}" in resumed.stdout
    again = _tune(str(config), env=env)  # a finished sweep is not started over by mistake
    text, _ = again.communicate(timeout=120)
    assert again.returncode == 2 and "already holds a sweep: pass --resume" in text


def test_a_sweep_runs_on_a_running_ray_cluster(tmp_path):
    pytest.importorskip("ray", reason=NEEDS_RAY)
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray is not None
    # token authentication on, with one token for the head and the client (Ray's own setting)
    env = _cli_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    port = "6391"
    head = subprocess.run(
        [
            ray,
            "start",
            "--head",
            "--port",
            port,
            "--num-cpus",
            "2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    try:
        assert head.returncode == 0, head.stdout + head.stderr
        config = _write_sweep(tmp_path, [3e-4, 1e-3])
        proc = _tune(str(config), "--address", f"127.0.0.1:{port}", "--out", str(tmp_path / "cluster"), env=env)
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
        summary = SweepSummary.load(tmp_path / "cluster")
        assert len(summary.trials) == 2 and all(row.status == "done" for row in summary.trials)
        assert (tmp_path / "cluster" / "sweep.png").stat().st_size > 0
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_ensemble_members_fitted_on_ray_match_the_ones_fitted_in_turn(prepared, tmp_path):
    pytest.importorskip("ray", reason=NEEDS_RAY)
    import dataclasses

    from safetensors.torch import load_file

    from retentionrl.interactions.io import read_events
    from retentionrl.pipeline.run import fit_config
    from retentionrl.simulators.learned.fit import fit_simulator
    from retentionrl.tune.parallel import fit_members_on_ray

    base = fit_config(prepared.sweep.run_config())
    configs = [dataclasses.replace(base, seed=s, bootstrap=True) for s in (0, 1)]
    outs = [tmp_path / "ray" / f"member_{k}" for k in (0, 1)]
    cards = fit_members_on_ray(prepared.fit_logs, "events", configs, outs)
    log = read_events(prepared.fit_logs, "events")
    for config, out, (card, epochs) in zip(configs, outs, cards):
        alone = fit_simulator(log, config, tmp_path / "alone" / out.name)
        assert epochs == len(alone.history) and card.metrics == pytest.approx(alone.card.metrics, rel=1e-5)
        a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "alone" / out.name / "model.safetensors")
        assert all(torch_allclose(a[n], b[n]) for n in a)
    first, second = (load_file(o / "model.safetensors") for o in outs)
    assert not all(torch_allclose(first[n], second[n]) for n in first)  # two seeds, two bootstrap samples


def torch_allclose(a, b) -> bool:
    import torch

    return bool(torch.allclose(a, b, atol=1e-6, rtol=0, equal_nan=True))


def test_samples_and_out_on_the_command_line_override_the_yaml(tmp_path, monkeypatch):
    import retentionrl.tune.sweep as sweep_module
    from retentionrl.cli.main import main

    seen = {}

    def fake_run_sweep(sweep, **kwargs):
        seen.update(sweep=sweep, **kwargs)
        return SweepSummary(metric="reward", best=None, trials=[], has_truth=True)

    monkeypatch.setattr(sweep_module, "run_sweep", fake_run_sweep)
    config = _write_sweep(tmp_path, [1e-3])
    main(["tune", str(config), "--samples", "3", "--out", str(tmp_path / "elsewhere"), "--address", "auto"])
    assert seen["sweep"].tune.samples == 3 and seen["sweep"].out == tmp_path / "elsewhere"
    assert seen["address"] == "auto" and seen["resume"] is False
    assert seen["sweep"].agents.config_fields() == _sweep(tmp_path).agents.config_fields()  # the rest as in the YAML
