"""Sweeps on Ray Tune: trials side by side on this machine, or on a Ray cluster.

``retentionrl tune CONFIG.yaml`` (:mod:`retentionrl.tune.config` for the YAML) runs, under
``OUT``:

==========================  =============================================================
``logs/``, ``split/``       the run's stages (:mod:`retentionrl.pipeline.run`): the logs and
                            their train / held-out split by shopper. The sweep reads only the
                            train shoppers, so the held-out ones stay untouched for a later
                            ``retentionrl run`` / ``certify`` of the chosen settings
``tune_split/``             train shoppers -> *fit* / *validation* (``tune.validation_fraction``)
``simulator/``              the run's simulator fitted on the fit shoppers (trials share it)
``validation_simulator/``   the same fit on the validation shoppers: it scores every trial
``ray/``                    Ray Tune's experiment (what ``--resume`` restores)
``trials/<id>/``            each trial (:mod:`retentionrl.tune.trial`): its agent with
                            TensorBoard logs, its HParams summary, ``trial.json``
``summary.json``, ``.csv``  every trial with its params, score and (world logs) truth;
``sweep.png``               score against truth per trial (world logs) or scores
==========================  =============================================================

The first four are cached like a run's stages (:mod:`retentionrl.pipeline.cache`). **The
best trial is the one with the largest score** — its value in the validation simulator —
never chosen by world truth, which the summary shows beside it for the record only.

Ray: by default a local instance on this machine (nothing to start); ``--address`` joins a
running cluster (``ray start --head`` on one machine, ``ray start --address HEAD:6379`` on
the others; retentionrl installed on every node and ``OUT`` on a filesystem all of them can
write). Each trial asks Ray for ``tune.cpus_per_trial`` CPUs (and ``gpus_per_trial`` GPUs),
so a 2-core machine runs two one-CPU trials at a time. An interrupted sweep resumes with
``--resume``: Ray Tune restores its experiment, finished trials are not run again, and a
trial that was cut off starts again from its agent's last checkpoint.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from retentionrl.core.atomic import atomic_path, atomic_write_text
from retentionrl.core.records import read_record, write_record
from retentionrl.pipeline.cache import StageRun, run_stage
from retentionrl.pipeline.run import resolve_revenue_scale, stage_logs, stage_simulator, stage_split
from retentionrl.tune.config import SweepConfig
from retentionrl.tune.trial import TRIAL_FILE, TrialResult, TrialSpec, run_trial, starts

Echo = Callable[[str], None]
EXPERIMENT = "ray"
SUMMARY_SCHEMA, SUMMARY_VERSION = "retentionrl-tune-summary", 1
INSTALL_HINT = "this runs on Ray (Ray Tune), which is not installed: pip install 'retentionrl[ray]'"


@dataclass(frozen=True)
class TrialRow:
    """One trial in the summary.

    :param status: ``done``, ``error`` (the trial raised; ``error`` says what) or
        ``unfinished`` (the sweep was interrupted before it ended: ``--resume`` runs it).
    :param starts: how many times it was started, over every run and resume of the sweep.
    """

    trial: str
    status: str
    params: dict[str, Any]
    result: TrialResult | None
    starts: int
    error: str | None = None


@dataclass(frozen=True)
class SweepSummary:
    """Every trial of a sweep, best first; ``best`` is chosen by score alone."""

    metric: str
    best: str | None
    trials: list[TrialRow]
    has_truth: bool

    def save(self, folder: Path) -> None:
        write_record(folder / "summary.json", self, SUMMARY_SCHEMA, SUMMARY_VERSION)
        atomic_write_text(folder / "summary.csv", self.csv())

    @classmethod
    def load(cls, folder: Path) -> SweepSummary:
        return read_record(folder / "summary.json", cls, SUMMARY_SCHEMA, SUMMARY_VERSION)

    def csv(self) -> str:
        """One row per trial: id, status, params, score, truth (world logs), seconds, starts."""
        keys = sorted({k for row in self.trials for k in row.params})
        truth = ["true_score", "true_return_visits", "true_profit"] if self.has_truth else []
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["trial", "status", *keys, "algo", "score", *truth, "seconds", "starts"])
        for row in self.trials:
            r = row.result
            values = [row.params.get(k, "") for k in keys]
            if r is None:
                writer.writerow([row.trial, row.status, *values, "", "", *[""] * len(truth), "", row.starts])
                continue
            true = [r.true_score, r.truth["return_visits"].estimate, r.truth["profit"].estimate] if r.truth else []
            writer.writerow([row.trial, row.status, *values, r.algo, r.score, *true, r.seconds, row.starts])
        return buffer.getvalue()


# ----------------------------------------------------------------------------- shared stages


def stage_tune_split(sweep: SweepConfig, split: StageRun, echo: Echo) -> StageRun:
    """The train shoppers -> ``fit.parquet`` / ``validation.parquet`` (by shopper, seeded)."""

    def compute(folder: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from retentionrl.interactions.splits import split_users

        table = pq.read_table(split.folder / "train.parquet")
        f = sweep.tune.validation_fraction
        parts = split_users(table.column("user_id").to_numpy(), (1.0 - f, f, 0.0), seed=sweep.seed)
        for name, mask in (("fit", parts.train), ("validation", parts.valid)):
            if not mask.any():
                raise ValueError(f"tune.validation_fraction = {f} leaves no {name} shoppers")
            with atomic_path(folder / f"{name}.parquet") as tmp:
                pq.write_table(table.filter(pa.array(mask)), tmp)

    return run_stage(
        sweep.out,
        "tune_split",
        {"validation_fraction": sweep.tune.validation_fraction, "seed": sweep.seed},
        {"train": split.folder / "train.parquet"},
        compute,
        code=("retentionrl.interactions.splits",),
        echo=echo,
    )


def prepare(sweep: SweepConfig, echo: Echo = print) -> TrialSpec:
    """Run (or reuse) the stages every trial shares; returns what a trial needs, with
    absolute paths (a Ray worker runs in another folder, perhaps on another machine)."""
    logs = sweep.logs.resolve() if sweep.logs is not None else None
    sweep = sweep.model_copy(update={"out": sweep.out.resolve(), "logs": logs})
    sweep.out.mkdir(parents=True, exist_ok=True)
    run = sweep.run_config()
    logs, fmt, _ = stage_logs(run, echo)
    split = stage_split(run, logs, fmt, echo)
    sweep = resolve_revenue_scale(sweep, split)  # every trial's reward, and the score, on the train logs' scale
    parts = stage_tune_split(sweep, split, echo)
    fit_logs, train = parts.folder / "fit.parquet", split.folder / "train.parquet"
    # both simulators take their arms from every train shopper: one action space, so one agent acts in both
    simulator = stage_simulator(run, fit_logs, echo, action_logs=train)
    validation = stage_simulator(
        run, parts.folder / "validation.parquet", echo, name="validation_simulator", action_logs=train
    )
    return TrialSpec(
        sweep=sweep, simulator=simulator.folder, fit_logs=fit_logs, action_logs=train, validation=validation.folder
    )


# ----------------------------------------------------------------------------- Ray Tune


def _ray_trial(params: dict[str, Any], spec: TrialSpec) -> None:
    """Ray Tune's function trainable: one trial in ``OUT/trials/<trial id>``, reported to Tune."""
    import torch
    from ray import tune

    torch.set_num_threads(max(1, math.floor(spec.sweep.tune.cpus_per_trial)))
    result = run_trial(spec, params, spec.sweep.out / "trials" / tune.get_context().get_trial_id())
    tune.report(result.metrics())


def _tuner(sweep: SweepConfig, spec: TrialSpec, resume: bool, echo: Echo):
    """A new Ray Tune experiment in ``OUT/ray``, or the interrupted one restored."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    path = sweep.out / EXPERIMENT
    resources = {"cpu": sweep.tune.cpus_per_trial, "gpu": sweep.tune.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(_ray_trial, spec=spec), resources)
    if resume:
        if not tune.Tuner.can_restore(str(path)):
            raise ValueError(f"--resume: {path} holds no sweep to resume (run without --resume to start one)")
        echo(f"[tune] resuming the sweep in {path}")
        return tune.Tuner.restore(str(path), trainable, resume_unfinished=True, resume_errored=True)
    if path.exists():
        raise ValueError(f"{path} already holds a sweep: pass --resume to finish it, or choose another --out")
    return tune.Tuner(
        trainable,
        param_space={key: domain.to_ray() for key, domain in sweep.tune.space.items()},
        tune_config=tune.TuneConfig(
            num_samples=sweep.tune.samples,
            search_alg=BasicVariantGenerator(random_state=sweep.seed),
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT, storage_path=str(path.parent), verbose=0, callbacks=[_progress(echo)]
        ),
    )


def _progress(echo: Echo):
    """A Ray Tune callback that prints one line per trial that ends (its score or its error)."""
    from ray.tune import Callback

    class Progress(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials) + 1
            params = ", ".join(f"{k}={v}" for k, v in trial.config.items())
            score = trial.last_result.get("score", math.nan)
            echo(f"[tune] trial {trial.trial_id} done ({ended} of {len(trials)}): score {score:.4g} ({params})")

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            echo(f"[tune] trial {trial.trial_id} failed: see {trial.path}")

    return Progress()


def require_ray() -> ModuleType:
    """The ``ray`` module; :class:`ImportError` saying how to install it where it is missing."""
    try:
        import ray
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


def init_ray(address: str | None) -> None:
    """Start a local Ray instance (``address`` None) or join the cluster at ``address``.

    :raises ImportError: Ray is not installed (with how to install it).
    """
    ray = require_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)


def run_sweep(
    sweep: SweepConfig, *, address: str | None = None, resume: bool = False, echo: Echo = print
) -> SweepSummary:
    """Prepare the shared stages, run every trial through Ray Tune, write the summary.

    :param address: a Ray cluster to join (``auto`` or ``HOST:PORT``); None: a local instance.
    :param resume: restore the interrupted sweep in ``OUT/ray`` instead of starting one.
    """
    ray = require_ray()
    spec = prepare(sweep, echo)
    sweep = spec.sweep
    init_ray(address)
    try:
        results = _tuner(sweep, spec, resume, echo).fit()
        rows = [_row(sweep.out / "trials", result) for result in results]
    finally:
        ray.shutdown()
    summary = summarize(rows, sweep)
    summary.save(sweep.out)
    plot_sweep(summary, sweep.out / "sweep.png")
    return summary


def _row(trials: Path, result) -> TrialRow:
    """A Ray Tune result as a summary row, read from the trial's own folder."""
    folder = trials / Path(result.path).name
    params = dict(result.config or {})
    if (folder / TRIAL_FILE).is_file():
        return TrialRow(folder.name, "done", params, TrialResult.load(folder / TRIAL_FILE), starts(folder))
    if result.error is not None:
        error = str(result.error).strip().splitlines()
        return TrialRow(folder.name, "error", params, None, starts(folder), error[-1] if error else "failed")
    return TrialRow(folder.name, "unfinished", params, None, starts(folder))


def summarize(rows: list[TrialRow], sweep: SweepConfig) -> SweepSummary:
    """The trials best first (by score, then id; failed ones last) and the best one."""
    # ties go to the first trial by id, so that a resumed sweep picks what an uninterrupted one does
    done = sorted((r for r in rows if r.result is not None), key=lambda r: (-r.result.score, r.trial))  # type: ignore[union-attr]
    failed = sorted((r for r in rows if r.result is None), key=lambda r: r.trial)
    return SweepSummary(
        metric=sweep.tune.metric,
        best=done[0].trial if done else None,
        trials=[*done, *failed],
        has_truth=sweep.has_world,
    )


def plot_sweep(summary: SweepSummary, path: Path) -> None:
    """Each trial's score in the validation simulator against its true value in the same
    metric (world logs; the dashed line is equality), or the scores alone; the best trial in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r.result for r in summary.trials if r.result is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    best = [r.trial == summary.best for r in done]
    if summary.has_truth and done:
        x = np.array([r.score for r in done])
        y = np.array([math.nan if r.true_score is None else r.true_score for r in done])
        ax.scatter(x, y, c="tab:blue", label="trial")
        ax.scatter(x[best], y[best], c="tab:red", s=60, zorder=3, label="best (by score)")
        ends = [np.nanmin([x, y]), np.nanmax([x, y])]
        ax.plot(ends, ends, "k--", lw=0.8, label="score = truth")
        ax.legend(fontsize=8)
        ax.set_xlabel(f"score in the validation simulator ({summary.metric})")
        ax.set_ylabel(f"true value in the world ({summary.metric})")
    else:
        ax.bar(range(len(done)), [r.score for r in done], color=["tab:red" if b else "tab:blue" for b in best])
        ax.set_xticks(range(len(done)), [r.trial for r in done], rotation=60, fontsize=7)
        ax.set_ylabel(f"score in the validation simulator ({summary.metric})")
    ax.set_title(f"{len(done)} trials; best (red): {summary.best}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
