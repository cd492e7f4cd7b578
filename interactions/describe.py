"""``retentionrl data describe``: what a log holds, in numbers a person checks first."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from retentionrl.interactions.io import EventLog
from retentionrl.interactions.retention import RetentionCurve, first_lifetimes, kaplan_meier, lifetime_durations
from retentionrl.interactions.schema import OPTIONAL_COLUMNS
from retentionrl.interactions.trajectories import trajectory_table, visits_with_trajectories
from retentionrl.interactions.visits import VisitMode, resolve_mode

RETENTION_DAYS: tuple[int, ...] = (7, 30, 90)
GAP_QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)


@dataclass
class LogSummary:
    """The numbers ``data describe`` prints (see :func:`describe_log`)."""

    log: EventLog
    visit_mode: str
    horizon_days: float
    n_visits: int
    n_users_with_visits: int
    visits_per_user: dict[str, float]
    gap_quantiles: dict[float, float]
    n_trajectories: int
    n_churned: int
    n_censored: int
    retention: RetentionCurve
    optional_columns: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary as text lines."""
        r = self.log.report
        out = [
            f"log          {r.source}  (format: {r.format})",
            f"rows read    {r.n_rows_read:,}",
        ]
        for reason, count in r.dropped.items():
            out.append(f"  excluded   {count:,} {reason}")
        out += [
            f"  duplicates {r.n_duplicates:,} exact duplicate rows removed",
            f"  reordered  {r.n_out_of_order:,} rows out of time order within a shopper (sorted)",
            f"events       {r.n_events:,}  from {self.log.start} to {self.log.end}",
            f"columns      optional present: {', '.join(self.optional_columns) or 'none'}",
            f"users        {self.log.n_users:,}"
            + (
                f"  ({self.log.n_users - self.n_users_with_visits:,} with no visit: only cancellations)"
                if self.n_users_with_visits < self.log.n_users
                else ""
            ),
            f"visits       {self.n_visits:,}  (a visit = {self.visit_mode})",
            "visits/user  mean {mean:.2f}  median {median:.0f}  p90 {p90:.0f}  max {max:.0f}".format(
                **self.visits_per_user
            ),
            "return gap   " + "  ".join(f"p{int(q * 100)} {v:.1f}d" for q, v in self.gap_quantiles.items()),
            f"lifetimes    {self.n_trajectories:,} trajectories: {self.n_churned:,} churned "
            f"(no return within {self.horizon_days:g} days), {self.n_censored:,} censored at the log's end",
            f"retention    share of users still active (Kaplan-Meier, first lifetime, n={self.retention.n:,}):",
        ]
        for day in RETENTION_DAYS:
            est, lo, hi = self.retention.at(day)
            out.append(f"  day {day:>3}    {est:.3f}  [95% CI {lo:.3f}, {hi:.3f}]")
        return out


def describe_log(
    log: EventLog, *, horizon_days: float = 90.0, mode: VisitMode = "auto", session_gap: str = "30min"
) -> LogSummary:
    """Build visits and trajectories of ``log`` and summarize them.

    Visits per user and the retention curve count each shopper once; return gaps are the
    days between consecutive visits of a shopper within a trajectory.
    """
    visits = visits_with_trajectories(log, horizon_days=horizon_days, mode=mode, session_gap=session_gap)
    trajectories = trajectory_table(visits)
    per_user = visits.groupby("user_id", sort=False).size().to_numpy()
    gaps = visits["gap_days"].dropna().to_numpy()
    first = first_lifetimes(trajectories)
    return LogSummary(
        log=log,
        visit_mode=resolve_mode(log, mode),
        horizon_days=horizon_days,
        n_visits=len(visits),
        n_users_with_visits=len(per_user),
        visits_per_user={
            "mean": float(per_user.mean()),
            "median": float(np.median(per_user)),
            "p90": float(np.quantile(per_user, 0.9)),
            "max": float(per_user.max()),
        },
        gap_quantiles={q: float(np.quantile(gaps, q)) if gaps.size else float("nan") for q in GAP_QUANTILES},
        n_trajectories=len(trajectories),
        n_churned=int(trajectories["churned"].sum()),
        n_censored=int((~trajectories["churned"]).sum()),
        retention=kaplan_meier(*lifetime_durations(first, log.end, horizon_days)),
        optional_columns=[c for c in OPTIONAL_COLUMNS if log.has_column(c)],
    )
