"""Random -> Bernoulli-TS on the Open Bandit Dataset, one campaign (``--campaign``, default "all").

The evaluation policy is ZOZOTOWN's Bernoulli TS (``bts_action_dist_<campaign>.csv``, the
action distribution obp computes); the logs are the campaign's uniform-random log (obp's
layout below ``--data``: ``random/<campaign>/<campaign>.csv`` and
``bts/<campaign>/<campaign>.csv``, each beside its ``item_context.csv``; a missing file is
one ``error:`` line naming it). Ground truth is obp's on-policy value: the mean click over
all rounds (all three slots) of the BTS log
(``OpenBanditDataset.calc_on_policy_policy_value_estimate`` = ``reward.mean()``). The value
estimated is the same position-averaged quantity: the mean over rounds of
:math:`\\pi_e`'s expected click at the round's slot.

For each of 10 bootstrap resamples of the random log (obp's protocol): fit the logistic
reward model on the resample of the random log only (3-fold cross-fitting, one model per
slot, user features + item features; the copies of a resampled round share a fold; the L2
penalty chosen from a grid by cross-fitted log-loss on the resample, the grid reaching
penalties that turn the features off, i.e. each slot's click rate -- with 38 clicks in the
log no feature carries out-of-fold signal, and that end of the grid wins in most
resamples), then run the seven estimators, and record :math:`|\\hat V - V_{on}| / V_{on}`.
Switch-DR's :math:`\\tau` and DRos's :math:`\\lambda` are tuned per resample by estimated
MSE (:func:`retentionrl.evaluation.bandit.tune_by_mse`, whose variance includes the reward model's fit),
as obp tunes them (it uses SLOPE).

The noise floor on the small sample of campaign "all": the on-policy truth rests on 42
clicks (its standard error is about 15% of it) and the random log on 38; the
resample-to-resample spread of the random log's click rate alone is about 16% of
:math:`V_{on}`, and DM with a constant reward model (that click rate) has a mean relative
error of about 0.15 here.

Published figures are printed only beside the data they were measured on, labelled as an
external reference with their source: obp's relative errors are for the small sample of
campaign "all" (10,000 rounds per log); for any other campaign or sample none is shown.

Run: ``python -m experiments.ope_obd [--data obd] [--campaign all] [--resamples 10]``; ``--data``
defaults to the copy ``retentionrl data fetch obd`` cached (the evaluation policy's
``bts_action_dist_<campaign>.csv`` is not in obp's sample: ``--from ../shared/data/obd`` brings it).
"""

from __future__ import annotations

import os

# many small Newton solves: a multi-threaded BLAS on shared cores is ~12x slower here (when
# numpy is already imported this has no effect; then set OPENBLAS_NUM_THREADS=1 yourself)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from retentionrl.core.errors import LogError
from retentionrl.evaluation.bandit import BanditInputs, tuned_estimators
from retentionrl.evaluation.reward_models import logistic_reward_model, select_logistic_reward_model
from retentionrl.interactions.adapters import read_bts_action_dist, read_obd
from retentionrl.interactions.datasets import cached_path


@dataclass(frozen=True)
class ExternalReference:
    """Relative errors another project published for one campaign and sample size: shown
    beside ours, labelled as theirs, and only on the data they were measured on."""

    label: str
    source: str
    campaign: str
    n_rounds: int
    rel_errors: dict[str, float]

    def applies_to(self, campaign: str, n_rounds: int) -> bool:
        """The figures were measured on this campaign and a random log of this many rounds."""
        return campaign == self.campaign and n_rounds == self.n_rounds


OBP_SMALL_SAMPLE = ExternalReference(
    label="obp",
    source="obp's own estimators (github.com/st-tech/zr-obp; Saito et al., NeurIPS 2021 datasets track), mean "
    "relative error over 10 bootstrap resamples with a logistic reward model, on the OBD small sample, "
    "campaign 'all', as quoted in shared/data/README.md",
    campaign="all",
    n_rounds=10_000,
    rel_errors={
        "dm": 0.155,
        "ips": 0.309,
        "snips": 0.308,
        "dr": 0.289,
        "sndr": 0.293,
        "switch-dr": 0.289,
        "dros": 0.218,
    },
)
CAMPAIGNS: tuple[str, ...] = ("all", "men", "women")
DEFAULT_DATA = cached_path("obd") or Path(__file__).resolve().parents[2] / "shared" / "data" / "obd"
"""The copy ``retentionrl data fetch obd`` cached, else this machine's ../shared/data copy."""
TAUS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, float("inf"))
LAMBDAS = (0.1, 0.5, 1.0, 5.0, 10.0, 50.0, 100.0, 1000.0)


def campaign_files(data: Path, campaign: str) -> list[Path]:
    """The files the study reads for ``campaign`` below ``data`` (obp's layout)."""
    logs = [
        data / policy / campaign / name
        for policy in ("random", "bts")
        for name in (f"{campaign}.csv", "item_context.csv")
    ]
    return [*logs, data / f"bts_action_dist_{campaign}.csv"]


def check_campaign_files(data: Path, campaign: str) -> None:
    """Raise one :class:`LogError` naming the first missing file of ``campaign`` and listing all it needs."""
    files = campaign_files(data, campaign)
    missing = [path for path in files if not path.is_file()]
    if missing:
        expected = ", ".join(str(path.relative_to(data)) for path in files)
        raise LogError(missing[0], f"no such file (--campaign {campaign} reads {expected} below {data})")


def run(
    data: Path,
    n_resamples: int = 10,
    seed: int = 12345,
    *,
    campaign: str = "all",
    l2: float | None = None,
    n_folds: int = 3,
    affinity: bool = False,
    group_folds: bool = True,
) -> pd.DataFrame:
    """Relative errors per resample and estimator (rows) with the on-policy truth.

    :param campaign: the OBD campaign (``all``, ``men``, ``women``): its folders and files are read.
    :param l2: the reward model's L2 penalty (on standardized features); None (default) =
        chosen per resample by cross-fitted log-loss on the log
        (:func:`retentionrl.evaluation.reward_models.select_logistic_reward_model`).
    :param n_folds: cross-fitting folds of the reward model (1 = fit and predict on all).
    :param affinity: add the 80 user-item affinity columns to the user context.
    :param group_folds: cross-fit with the copies of a resampled round in one fold.
    """
    check_campaign_files(data, campaign)
    random_log = read_obd(data / "random" / campaign, affinity=affinity)
    on_policy = read_obd(data / "bts" / campaign).reward
    truth = float(on_policy.mean())
    truth_rel_se = float(np.sqrt(truth * (1.0 - truth) / on_policy.size) / truth)
    dist = read_bts_action_dist(data / f"bts_action_dist_{campaign}.csv")
    rows = []
    for b in range(n_resamples):
        rows_drawn = np.random.default_rng(seed + b).integers(0, random_log.n_rounds, size=random_log.n_rounds)
        fb = random_log.subsample(rows_drawn)  # = random_log.bootstrap(seed + b), keeping the rows drawn
        model_args = (fb.context, fb.action, fb.reward, fb.n_actions, fb.position, fb.len_list, fb.action_context)
        if l2 is None:
            fit, chosen, _ = select_logistic_reward_model(
                *model_args, n_folds=n_folds, seed=seed + b, groups=rows_drawn if group_folds else None
            )
        else:
            fit = logistic_reward_model(
                *model_args, n_folds=n_folds, l2=l2, seed=seed + b, groups=rows_drawn if group_folds else None
            )
            chosen = l2
        action_dist = np.broadcast_to(dist, (fb.n_rounds,) + dist.shape)
        inputs = BanditInputs.prepare(fb.reward, fb.action, fb.propensity, action_dist, fb.position, fit)
        estimators = tuned_estimators(inputs, TAUS, LAMBDAS)
        for est in estimators:
            v = est._checked_terms(inputs).value()
            rows.append(
                {
                    "resample": b,
                    "estimator": est.name,
                    "estimate": v,
                    "truth": truth,
                    "rel_error": abs(v - truth) / truth,
                    "l2": chosen,
                    "truth_rel_se": truth_rel_se,
                    "n_rounds": random_log.n_rounds,
                }
            )
    return pd.DataFrame(rows)


def table(frame: pd.DataFrame, reference: ExternalReference | None = None) -> pd.DataFrame:
    """Mean, sd and standard error of our relative errors per estimator; with a
    ``reference``, its published figure in a column ``<label>_external``."""
    g = frame.groupby("estimator", sort=False)["rel_error"]
    out = pd.DataFrame({"ours_mean": g.mean(), "ours_sd": g.std(ddof=1)})
    out["ours_se"] = out["ours_sd"] / np.sqrt(g.size())
    if reference is not None:
        out[f"{reference.label}_external"] = [reference.rel_errors[e] for e in out.index]
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the study and print its table; a missing or malformed data file is one ``error:`` line, exit 2."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--campaign", choices=CAMPAIGNS, default="all", help="OBD campaign: the folders and files read below --data"
    )
    parser.add_argument("--resamples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--l2", type=float, default=None, help="reward-model L2 (default: chosen by CV log-loss)")
    parser.add_argument("--affinity", action="store_true", help="add user-item affinities to the context")
    args = parser.parse_args(argv)
    try:
        frame = run(args.data, args.resamples, args.seed, campaign=args.campaign, l2=args.l2, affinity=args.affinity)
    except LogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    n_rounds = int(frame["n_rounds"].iloc[0])
    print(f"campaign {args.campaign!r}, {n_rounds:,} rounds in the random log")
    print(
        f"on-policy truth V_on = {frame['truth'].iloc[0]:.5f} (mean click of the BTS log, all slots); its own "
        f"standard error is {frame['truth_rel_se'].iloc[0]:.1%} of it, the size of the relative errors compared"
    )
    chosen = frame.groupby("resample")["l2"].first()
    print(f"reward-model l2 per resample: {chosen.tolist()}")
    reference = OBP_SMALL_SAMPLE if OBP_SMALL_SAMPLE.applies_to(args.campaign, n_rounds) else None
    print(table(frame, reference).round(3).to_string())
    if reference is None:
        print("no published figure for this campaign and sample: no external reference shown")
    else:
        print(f"{reference.label}_external: external reference, not measured in this run: {reference.source}")


if __name__ == "__main__":
    main()
