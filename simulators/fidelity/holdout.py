r"""A holdout forecast for any purchase log: the learned simulator against the BTYD models.

The protocol of the BTYD literature (Fader, Hardie and Lee 2005), on any log the project
reads. Split the log in time at ``cutoff``; the *calibration* customers are those with a
visit before it, and the *holdout* is ``[cutoff, cutoff + holdout_days)``. Every model sees
the calibration events only and forecasts, for **every** calibration customer, their visits
(purchase days by default, the unit BTYD studies count) in the holdout:

* **simulator**: fit on the calibration events (:func:`~retentionrl.simulators.learned.fit.fit_simulator`),
  each customer's history replayed and simulated on through the window, reactivations of
  dormant customers included (:func:`~retentionrl.simulators.fidelity.holdout_forecast.forecast_visits`);
  with ``fits`` :math:`K > 1`, K fits (seeds ``seed..seed+K-1``, bootstrap resamples with
  ``bootstrap``) pool their replicas. Its horizon :math:`H` comes from the calibration data
  alone (:func:`~retentionrl.interactions.horizon.horizon_from_gaps`) unless given;
* **BG/NBD** and **Pareto/NBD** on the calibration summary :math:`(x, t_x, T)`, maximum
  likelihood (no penalty unless a fit does not converge), expectations evaluated so that
  every customer gets a finite forecast (:mod:`~retentionrl.simulators.fidelity.bgnbd`,
  :mod:`~retentionrl.simulators.fidelity.btyd`); spend per visit by **Gamma-Gamma**;
* **zero**: no customer returns. Per-customer MAE rewards forecasting zero on a log where
  most customers do not come back, so the table shows it beside the models.

Scores (:func:`~retentionrl.simulators.fidelity.btyd.score_forecasts`): per-customer MAE and
RMSE of the mean forecast (and MAE of the median of the predictive draws, the point forecast
that minimises absolute error), the total forecast against the actual total, and the MAE of
the weekly curve of all customers' visits. A model without a finite forecast for some
customer fails the run with the count: nobody is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retentionrl.interactions.horizon import horizon_from_gaps
from retentionrl.interactions.io import EventLog
from retentionrl.interactions.trajectories import add_trajectories
from retentionrl.interactions.visits import VisitMode, build_visits
from retentionrl.simulators.fidelity import bgnbd, btyd
from retentionrl.simulators.fidelity.holdout_forecast import forecast_visits
from retentionrl.simulators.learned.fit import FitConfig, fit_simulator

DAY = pd.Timedelta("1D")


@dataclass(frozen=True)
class HoldoutConfig:
    """Settings of :func:`run_holdout`.

    :param cutoff: end of calibration (events at or after it are holdout).
    :param holdout_days: length of the holdout window; ``None``: to the day after the log's
        last event.
    :param horizon: the simulator's :math:`H` in days; ``None``: chosen from the calibration
        data by :func:`~retentionrl.interactions.horizon.horizon_from_gaps`.
    :param fits: simulators fit (seeds ``seed, seed + 1, ...``); their replicas are pooled.
    :param bootstrap: each fit on a bootstrap resample of the calibration trajectories.
    :param epochs: most training epochs of each fit (early stopping may end sooner).
    :param replicas: simulated futures of each customer, per fit; also the number of draws
        from each BTYD model's predictive distribution (for its median). The mean of R
        replicas adds its Monte Carlo variance :math:`\\sigma_i^2 / R` to each customer's squared
        error, so RMSE needs many: with 20, Online Retail's RMSE reads 1.542, with 100 1.528
        (the model's own expectation is the same).
    :param visit_mode: what a visit is (``day``: a purchase day).
    """

    cutoff: pd.Timestamp
    holdout_days: float | None = None
    horizon: int | None = None
    fits: int = 1
    bootstrap: bool = False
    epochs: int = 30
    replicas: int = 100
    seed: int = 0
    device: str = "auto"
    visit_mode: VisitMode = "day"

    def __post_init__(self) -> None:
        for name in ("fits", "epochs", "replicas"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.holdout_days is not None and not self.holdout_days > 0:
            raise ValueError(f"holdout_days must be > 0, got {self.holdout_days}")
        if self.horizon is not None and int(self.horizon) < 1:
            raise ValueError(f"horizon must be >= 1 day, got {self.horizon}")


@dataclass
class HoldoutReport:
    """What :func:`run_holdout` measured (JSON-ready through :meth:`to_dict`).

    :param scores: one row per model: ``mae``, ``rmse``, ``total``, ``total_error``
        (relative), and ``mae_median`` (of the median of its predictive draws).
    :param weekly: visits per week of the window: ``actual`` and each model's.
    :param spend: one row per model: ``total`` spend in the window and ``total_error``.
    :param per_customer: actual visits and spend and each model's mean forecasts, by customer.
    """

    source: str
    cutoff: str
    holdout_days: float
    horizon_days: int
    horizon_rule: str
    customers: int
    actual_visits: float
    actual_spend: float
    scores: pd.DataFrame
    weekly: pd.DataFrame
    weekly_mae: dict[str, float]
    spend: pd.DataFrame
    per_customer: pd.DataFrame
    params: dict[str, dict] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Everything but the per-customer table, as plain JSON types."""
        out = {k: v for k, v in asdict(self).items() if k not in ("scores", "weekly", "spend", "per_customer")}
        out["scores"] = self.scores.to_dict(orient="index")
        out["weekly"] = self.weekly.to_dict(orient="list")
        out["spend"] = self.spend.to_dict(orient="index")
        return out

    def lines(self) -> list[str]:
        """The tables, as printed by ``retentionrl simulator holdout``."""
        out = [
            f"holdout      {self.source}: calibration to {self.cutoff}, {self.holdout_days:g} days after it",
            f"customers    {self.customers:,} with a calibration visit, {self.actual_visits:,.0f} holdout visits "
            f"(mean {self.actual_visits / max(self.customers, 1):.3f}), spend {self.actual_spend:,.0f}",
            f"horizon      H = {self.horizon_days} days ({self.horizon_rule})",
            "",
            f"{'model':<12} {'MAE':>8} {'MAE(med)':>9} {'RMSE':>8} {'total':>10} {'vs actual':>10}",
        ]
        for name, row in self.scores.iterrows():
            out.append(
                f"{name:<12} {row['mae']:8.4f} {row['mae_median']:9.4f} {row['rmse']:8.4f} {row['total']:10,.0f} "
                f"{row['total_error']:+10.1%}"
            )
        out.append(f"{'actual':<12} {'':>8} {'':>9} {'':>8} {self.actual_visits:10,.0f}")
        out += ["", "weekly-curve MAE (visits/week): " + ", ".join(f"{k} {v:.1f}" for k, v in self.weekly_mae.items())]
        out += [
            "spend in the window: "
            + ", ".join(f"{k} {r['total']:,.0f} ({r['total_error']:+.1%})" for k, r in self.spend.iterrows())
            + f"; actual {self.actual_spend:,.0f}"
        ]
        if any(self.fallbacks.values()):
            out.append("fallbacks    " + ", ".join(f"{k}: {v:,} customers" for k, v in self.fallbacks.items() if v))
        return out


@dataclass(frozen=True)
class _Btyd:
    """A BTYD visit model: ``fit(x, t_x, T)``, ``expected(model, x, t_x, T, days)``,
    ``sample(model, x, t_x, T, days, replicas, seed)``, and where it has a stated fallback
    for some customers, ``fallback(model, x, t_x, T)``: the mask of those who got it."""

    name: str
    fit: Callable
    expected: Callable
    sample: Callable
    fallback: Callable | None = None


BTYD_MODELS: tuple[_Btyd, ...] = (
    _Btyd("BG/NBD", bgnbd.fit_bgnbd, bgnbd.expected_future_visits, bgnbd.sample_future_visits),
    _Btyd(
        "Pareto/NBD",
        btyd.fit_pareto_nbd,
        btyd.pareto_expected_future_visits,
        btyd.pareto_sample_future_visits,
        lambda model, x, t_x, T: btyd.pareto_prob_alive(model, x, t_x, T).fallback,
    ),
)


def run_holdout(log: EventLog, config: HoldoutConfig, out_dir: str | Path | None = None) -> HoldoutReport:
    """The comparison of the module docstring on ``log``; simulator checkpoints go below
    ``out_dir`` (``model``, or ``model_seed<k>`` with several fits) when given.

    :raises ValueError: a cutoff outside the log, a window past its end, no calibration
        customer, or a model without a finite forecast for some customer (with the count).
    """
    cutoff = pd.Timestamp(config.cutoff)
    end_of_log = log.end.normalize() + DAY
    if not log.start < cutoff < log.end:
        raise ValueError(f"cutoff {cutoff} must fall inside the log ({log.start} to {log.end})")
    holdout_days = (end_of_log - cutoff) / DAY if config.holdout_days is None else float(config.holdout_days)
    holdout_end = cutoff + holdout_days * DAY
    if holdout_end > end_of_log:
        raise ValueError(
            f"the holdout window ends {holdout_end}, after the log's last day ({log.end:%Y-%m-%d}): "
            f"at most {(end_of_log - cutoff) / DAY:g} holdout days"
        )
    calibration = EventLog(log.events.loc[log.events["timestamp"].to_numpy() < cutoff.to_datetime64()], log.report)
    all_visits = build_visits(log, mode=config.visit_mode)
    cal_visits = build_visits(calibration, mode=config.visit_mode)
    summary = btyd.calibration_holdout_spend_summary(all_visits, cutoff, holdout_end)
    if summary.empty:
        raise ValueError(f"no customer has a visit before the cutoff {cutoff}")
    horizon, rule = _horizon(cal_visits, calibration, cutoff, config.horizon)
    x, t_x, big_t = (summary[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    actual = summary["frequency_holdout"].to_numpy()
    actual_spend, monetary = summary["spend_holdout"].to_numpy(), summary["monetary_value_cal"].to_numpy()
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    sim_visits, sim_spend, sim_weekly, params = _simulate(
        calibration, cal_visits, cutoff, holdout_days, horizon, config, out_dir, summary.index
    )
    seconds["simulator"] = time.perf_counter() - t0
    means = {"simulator": sim_visits.mean(axis=1)}
    medians = {"simulator": np.median(sim_visits, axis=1)}
    weekly = {"simulator": sim_weekly}
    spend = {"simulator": sim_spend.mean(axis=1)}

    t0 = time.perf_counter()
    gamma_gamma = btyd.fit_gamma_gamma(x, monetary)
    per_visit = btyd.expected_spend_per_visit(gamma_gamma, x, monetary)
    params["Gamma-Gamma"] = _plain_params(gamma_gamma)
    params["Gamma-Gamma"]["frequency_spend_correlation"] = btyd.frequency_spend_correlation(x, monetary)
    fallbacks = {"Gamma-Gamma: no repeat visit with spend, the population mean": int(per_visit.fallback.sum())}
    for model in BTYD_MODELS:
        fitted = model.fit(x, t_x, big_t)
        expected = model.expected(fitted, x, t_x, big_t, holdout_days)
        draws = model.sample(fitted, x, t_x, big_t, holdout_days, config.replicas * config.fits, seed=config.seed)
        means[model.name], medians[model.name] = expected, np.median(draws, axis=1)
        weekly[model.name] = btyd.expected_weekly_visits(model.expected, fitted, x, t_x, big_t, holdout_days).sum(0)
        spend[model.name] = expected * per_visit.value
        params[model.name] = _plain_params(fitted)
        if model.fallback is not None:
            fallbacks[f"{model.name}: P(alive) by quadrature"] = int(np.sum(model.fallback(fitted, x, t_x, big_t)))
    seconds["btyd"] = time.perf_counter() - t0
    means["zero"], medians["zero"] = np.zeros_like(actual), np.zeros_like(actual)

    scores = _scores(actual, means)
    scores["mae_median"] = [float(np.abs(medians[name] - actual).mean()) for name in scores.index]
    real_weekly = btyd.holdout_weekly_visits(all_visits, cutoff, holdout_end)
    weekly_frame = pd.DataFrame({"actual": real_weekly, **weekly})
    weekly_frame.index = pd.RangeIndex(1, len(real_weekly) + 1, name="week")
    weekly_mae = {
        name: btyd.weekly_curve_mae(weekly_frame["actual"].to_numpy(), curve) for name, curve in weekly.items()
    }
    spend_scores = _scores(actual_spend, spend)[["total", "total_error"]]
    per_customer = pd.DataFrame(
        {"actual": actual, "actual_spend": actual_spend, **{f"{k} visits": v for k, v in means.items() if k != "zero"}},
        index=summary.index,
    )
    return HoldoutReport(
        source=log.source,
        cutoff=str(cutoff.date()) if cutoff == cutoff.normalize() else str(cutoff),
        holdout_days=holdout_days,
        horizon_days=horizon,
        horizon_rule=rule,
        customers=len(actual),
        actual_visits=float(actual.sum()),
        actual_spend=float(actual_spend.sum()),
        scores=scores,
        weekly=weekly_frame,
        weekly_mae=weekly_mae,
        spend=spend_scores,
        per_customer=per_customer,
        params=params,
        fallbacks=fallbacks,
        seconds=seconds,
        config={k: (str(v) if isinstance(v, pd.Timestamp) else v) for k, v in asdict(config).items()},
    )


def _scores(actual: np.ndarray, forecasts: dict[str, np.ndarray]) -> pd.DataFrame:
    """:func:`~retentionrl.simulators.fidelity.btyd.score_forecasts` as the report names its columns."""
    table = btyd.score_forecasts(actual, forecasts)
    return table.rename(columns={"total_predicted": "total", "relative_error_total": "total_error"})[
        ["mae", "rmse", "total", "total_error"]
    ]


def _horizon(
    cal_visits: pd.DataFrame, calibration: EventLog, cutoff: pd.Timestamp, given: int | None
) -> tuple[int, str]:
    """:math:`H` and how it was chosen (given, or the stated rule on the calibration gaps)."""
    if given is not None:
        return int(given), "given"
    users = cal_visits["user_id"].to_numpy()
    start = cal_visits["start"].to_numpy().astype("datetime64[ns]").view("int64")
    same = users[1:] == users[:-1]
    gaps = ((start[1:] - start[:-1]) / (DAY.value))[same]
    span = (cutoff - calibration.start) / DAY
    return horizon_from_gaps(gaps, span), "0.9-quantile of the calibration's return gaps, within [7, half its span]"


def _simulate(
    calibration: EventLog,
    cal_visits: pd.DataFrame,
    cutoff: pd.Timestamp,
    holdout_days: float,
    horizon: int,
    config: HoldoutConfig,
    out_dir: str | Path | None,
    customers: pd.Index,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict]]:
    """Pooled replicas of visits and spend ``(customers, fits * replicas)``, the mean weekly
    curve, and each fit's dormancy law."""
    visits = add_trajectories(cal_visits, cutoff, horizon_days=horizon)
    counts, spends, weekly, params = [], [], [], {}
    for seed in range(config.seed, config.seed + config.fits):
        fit_config = FitConfig(
            epochs=config.epochs,
            seed=seed,
            device=config.device,
            visit_mode=config.visit_mode,
            horizon_days=horizon,
            bootstrap=config.bootstrap,
        )
        target = None if out_dir is None else Path(out_dir) / ("model" if config.fits == 1 else f"model_seed{seed}")
        result = fit_simulator(calibration, fit_config, target)
        forecast = forecast_visits(result.simulator, visits, cutoff, holdout_days, replicas=config.replicas, seed=seed)
        counts.append(forecast.visits.reindex(customers).to_numpy())
        spends.append(forecast.spend.reindex(customers).to_numpy())
        weekly.append(forecast.weekly)
        params[f"simulator seed {seed}: reactivation"] = dict(result.card.reactivation)
    return np.concatenate(counts, axis=1), np.concatenate(spends, axis=1), np.mean(weekly, axis=0), params


def _plain_params(model: Any) -> dict[str, float]:
    """A lifetimes fitter's parameters (and penalty) as floats."""
    out = {str(k): float(v) for k, v in model.params_.items()}
    out["penalizer"] = float(getattr(model, "penalizer_coef", 0.0))
    return out


def plot_weekly(report: HoldoutReport, path: str | Path) -> None:
    """The weekly curves of :class:`HoldoutReport` as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from retentionrl.core.atomic import atomic_path

    fig, ax = plt.subplots(figsize=(7.5, 4), dpi=100)
    weeks = report.weekly.index.to_numpy()
    ax.plot(weeks, report.weekly["actual"], "k-o", ms=3, label="actual")
    for name, marker in zip([c for c in report.weekly.columns if c != "actual"], "s^vD", strict=False):
        ax.plot(weeks, report.weekly[name], f"-{marker}", ms=3, label=f"{name} (MAE {report.weekly_mae[name]:.1f})")
    ax.set_xlabel(f"week after {report.cutoff}")
    ax.set_ylabel("visits of calibration customers")
    ax.set_title(f"Holdout forecast: {Path(report.source).name}, H = {report.horizon_days} d", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
