"""The pipeline's report: one self-contained HTML page (Jinja2, autoescape on) and its PNGs.

Sections, in order (fidelity first where the logs cannot identify any action effect):
what the logs identify (on Complete Journey logs, with the counts of its campaigns and
coupons and what they do and do not identify: :func:`campaign_section`); per policy the true value in the world, the value in the learned
simulator and the off-policy estimates, each with its 95% interval and sample size;
the retention-profit frontier (which agent dominates which baseline and world heuristic);
retention curves of all policies on one plot; coupon spend vs retention; simulator
fidelity; what each policy does by shopper segment; the run's config. Nothing in it
names a shopper: only policies, segments, item groups and counts.
"""

from __future__ import annotations

from pathlib import Path

from retentionrl.core.interval import Interval
from retentionrl.core.report import pyplot, render, save_png, write_page
from retentionrl.evaluation.diagnostics import not_estimable
from retentionrl.interactions.adapters.complete_journey import PACKAGE_SOURCE, CampaignSummary
from retentionrl.pipeline.measure import AT_RISK_DAYS, LOYAL_VISITS, SEGMENTS
from retentionrl.pipeline.results import Curve, EvaluateResults, FidelityResults, OffPolicy

METRICS = (
    ("return_visits", "return visits / shopper"),
    ("active_at_horizon", "active at H"),
    ("profit", "profit / shopper"),
    ("coupon_cost", "coupon cost / shopper"),
)
OPE_COLUMNS = (
    ("bandit", "dr", "DR: profit / visit"),
    ("trajectory", "dr", "DR: return visits / lifetime"),
    ("trajectory", "wis", "WIS: return visits / lifetime"),
    ("model", "sim-magic", "simulator MAGIC: return visits / lifetime"),
)

NO_COGS_NOTE = (
    "These logs record no cost of goods (no unit_cost column): profit is net revenue (spend - coupon "
    "cost), so it overstates what the shop keeps, and by more for policies that sell more."
)


def fmt(e: Interval | None, digits: int = 3) -> str:
    """``estimate [low, high]``; an em dash where there is none."""
    return e.format(digits) if e is not None else "—"


def _step(ax, curve: Curve, label: str, **style) -> None:
    ax.step(curve.days, curve.survival, where="post", label=f"{label} (n={curve.n:,})", **style)
    ax.fill_between(curve.days, curve.lower, curve.upper, step="post", alpha=0.12)


def _places(results: EvaluateResults) -> list[str]:
    """Where the policies ran: the world (when known) and the learned simulator."""
    return ["world", "simulator"] if results.has_world else ["simulator"]


def _errorbar(ax, x: Interval, y: Interval, **style) -> None:
    ax.errorbar(
        x.estimate,
        y.estimate,
        xerr=[[x.estimate - x.low], [x.high - x.estimate]],
        yerr=[[y.estimate - y.low], [y.high - y.estimate]],
        **style,
    )


def plot_retention(results: EvaluateResults, fidelity: FidelityResults, path: Path) -> None:
    """One panel per place a policy ran (world, learned simulator), every policy's curve."""
    plt = pyplot()
    places = _places(results)
    fig, axes = plt.subplots(1, len(places), figsize=(6.5 * len(places), 4.2), squeeze=False)
    h = results.horizon_days
    for ax, place in zip(axes[0], places):
        for name, row in results.policies.items():
            _step(ax, getattr(row, place).curve, name)
        _step(ax, fidelity.logged_curve, "held-out logs", color="black", ls="--")
        ax.set(
            xlim=(0, h),
            ylim=(0, 1.02),
            xlabel="days since first visit",
            ylabel="share still active",
            title={"world": "true world", "simulator": "learned simulator"}[place],
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_png(fig, path)


def plot_spend(results: EvaluateResults, path: Path) -> None:
    """Coupon cost per shopper vs share active at H, with 95% intervals, per policy."""
    plt = pyplot()
    place = _places(results)[0]
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, row in results.policies.items():
        v = getattr(row, place).values
        _errorbar(ax, v["coupon_cost"], v["active_at_horizon"], fmt="o", capsize=3, label=name)
    ax.set(
        xlabel="coupon cost per shopper over H",
        ylabel="share active at H",
        title=f"coupon spend vs retention ({'true world' if place == 'world' else 'learned simulator'}, "
        f"n={results.n_eval_users:,} shoppers each)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_png(fig, path)


_MARKERS = {"agent": ("o", "tab:blue"), "baseline": ("s", "tab:green"), "heuristic": ("^", "tab:orange")}


def plot_frontier(results: EvaluateResults, path: Path) -> None:
    """Profit vs return visits per shopper with 95% intervals, one panel per place: agents
    (blue circles), baselines fit on the logs (green squares), world heuristics (orange
    triangles); policies at the same point share one label; the agents on the frontier are
    joined by a line."""
    plt = pyplot()
    places = [p for p in ("world", "simulator") if p in results.frontier]
    fig, axes = plt.subplots(1, len(places), figsize=(6.8 * len(places), 5.2), squeeze=False)
    for ax, place in zip(axes[0], places):
        on_frontier: list[tuple[float, float]] = []
        labels: dict[tuple[float, float], list[str]] = {}
        for name, row in results.policies.items():
            x, y = (getattr(row, place).values[axis] for axis in ("return_visits", "profit"))
            marker, color = _MARKERS[row.kind]
            _errorbar(ax, x, y, fmt=marker, color=color, capsize=2, ms=5, lw=0.8)
            labels.setdefault((round(x.estimate, 3), round(y.estimate, 3)), []).append(name)
            if row.kind == "agent" and name in results.frontier[place].frontier:
                on_frontier.append((x.estimate, y.estimate))
        for (x, y), names in labels.items():
            ax.annotate(" = ".join(names), (x, y), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        if len(on_frontier) > 1:
            ax.plot(*zip(*sorted(set(on_frontier))), color="tab:blue", lw=0.8, alpha=0.6)
        for kind, (marker, color) in _MARKERS.items():
            ax.plot(
                [],
                [],
                marker,
                color=color,
                label={"agent": "agent", "baseline": "baseline (fit on the logs)", "heuristic": "world heuristic"}[
                    kind
                ],
            )
        ax.set(
            xlabel="return visits per shopper over H",
            ylabel="profit per shopper over H",
            title="true world" if place == "world" else "learned simulator",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{results.n_eval_users:,} fresh shoppers per policy, 95% intervals", fontsize=9)
    save_png(fig, path)


def _frontier_tables(results: EvaluateResults) -> list[tuple[str, list]]:
    """Per place: each baseline and heuristic with the agents that dominate it."""
    tables = []
    for place, title in (("world", "in the true world"), ("simulator", "in the learned simulator")):
        if place not in results.frontier:
            continue
        part = results.frontier[place]
        rows = [
            (
                name,
                results.policies[name].kind,
                ", ".join(agents) if agents else "no agent",
                "yes" if name in part.frontier else "no",
            )
            for name, agents in part.dominated_by.items()
        ]
        tables.append((title, rows))
    return tables


def plot_fidelity(fidelity: FidelityResults, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    _step(ax, fidelity.logged_curve, "held-out logs (Kaplan-Meier)", color="black")
    _step(ax, fidelity.simulated.curve, f"learned simulator, {fidelity.policy}")
    ax.set(
        xlim=(0, fidelity.horizon_days),
        ylim=(0, 1.02),
        xlabel="days since first visit",
        ylabel="share still active",
        title="simulated vs logged retention",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_png(fig, path)


def _value_tables(results: EvaluateResults) -> list[tuple[str, dict]]:
    tables = []
    n = results.n_eval_users
    for place, title in (("world", "True value in the world"), ("simulator", "Value in the learned simulator")):
        if place not in _places(results):
            continue
        # in the simulator with an ensemble, also each candidate's return visits in each member alone
        members = place == "simulator" and any(row.members for row in results.policies.values())
        rows = [
            [
                name + (" (world heuristic)" if row.kind == "heuristic" else ""),
                *(fmt(getattr(row, place).values[m]) for m, _ in METRICS),
                *([" / ".join(f"{v['return_visits'].estimate:.2f}" for v in row.members) or "—"] if members else []),
            ]
            for name, row in results.policies.items()
        ]
        header = ["policy", *(label for _, label in METRICS), *(["return visits in each simulator"] if members else [])]
        notes = (
            [
                "The simulator columns are the ensemble's (each shopper in one member); the last column is each "
                "member alone, where the selection takes the least favourable (heuristics are not candidates)."
            ]
            if members
            else []
        )
        if rows:
            tables.append(
                (
                    f"{title} (n = {n:,} fresh shoppers per policy, over H = {results.horizon_days} days)",
                    {"header": header, "rows": rows, "notes": notes},
                )
            )
    ope = {name: row.ope for name, row in results.policies.items() if row.ope is not None}
    if ope:
        rows, notes = [], []
        for name, o in ope.items():
            rows.append(
                [
                    name,
                    *(_ope_cell(o, fam, est) for fam, est, _ in OPE_COLUMNS),
                    f"{o.n_visits:,} / {o.n_trajectories:,}",
                    f"{o.ess:.1f}",
                ]
            )
            notes += [f"{name}: {w}" for w in o.warnings]
        if any(o.model for o in ope.values()):
            notes.insert(
                0,
                "Simulator MAGIC: the learned simulators' rollouts from each held-out shopper's logged history, "
                "blended with the logged returns where their weights are stable (retentionrl.evaluation."
                "model_based); its interval spans the held-out shoppers and the ensemble's members. Where the "
                "ESS is low it rests on the simulators, so it is shown even where the importance-weighted "
                "columns are not estimable. Heuristics are not estimated with it.",
            )
        if results.propensity_note:
            notes.insert(0, "Rests on estimated propensities: " + results.propensity_note)
        tables.append(
            (
                "Off-policy estimates on held-out logs (bootstrap over shoppers)",
                {
                    "header": [
                        "policy",
                        *(label for *_, label in OPE_COLUMNS),
                        "n visits / lifetimes",
                        "ESS (lifetimes)",
                    ],
                    "rows": rows,
                    "notes": notes,
                },
            )
        )
    return tables


def _ope_cell(o: OffPolicy, family: str, estimator: str) -> str:
    """An off-policy estimate as ``mean [low, high]``, or why it is not estimable from the
    logs (:func:`retentionrl.evaluation.diagnostics.not_estimable`): the family's ESS over its units
    (visits for per-decision estimators, lifetimes for trajectory ones)."""
    e = getattr(o, family).get(estimator)
    if e is None:
        return "—"
    if family == "model":  # rests on the simulators where the weights do not: no ESS rule
        return not_estimable(e.low, e.high) or fmt(e)
    ess, n = (o.bandit_ess, o.n_visits) if family == "bandit" else (o.ess, o.n_trajectories)
    return not_estimable(e.low, e.high, ess, n) or fmt(e)


def _behaviour(results: EvaluateResults) -> list[tuple[str, list]]:
    out = []
    for name, row in results.policies.items():
        rows = []
        for seg in SEGMENTS:
            b = row.behaviour[seg]
            if b.coupon_rate is None:
                rows.append([seg, f"{b.n:,}", "—", "—"])
                continue
            top = ", ".join(f"{_arm(t.arm)} ({t.share:.0%})" for t in b.top_arms)
            rows.append([seg, f"{b.n:,}", fmt(b.coupon_rate, 2), top])
        out.append((name, rows))
    return out


def _arm(name: str) -> str:
    return f"group {name}" if name.isdigit() else name


def _fidelity_rows(fid: FidelityResults) -> tuple[list, list]:
    days = ["7", "30", str(fid.horizon_days)]
    rows = []
    for label, curve, returns in (
        ("held-out logs", fid.logged_curve, fid.logged_return_visits),
        ("learned simulator", fid.simulated.curve, fid.simulated.values["return_visits"]),
    ):
        cells = [f"{fmt(curve.at[d])} (n={curve.n:,})" if curve.at[d] else "— (log too short)" for d in days]
        cells.append(f"{fmt(returns)} (n={returns.n:,})" if returns else "— (no shopper observed for H days)")
        rows.append((label, cells))
    return days, rows


def _identification(fid: FidelityResults, has_world: bool) -> tuple[list, list[str]]:
    rec, coupon = fid.identifies_recommendation, fid.identifies_coupon
    table = [
        (
            "recommendation (which group is shown)",
            "yes" if rec else "no",
            "the logs vary the recommended arm" if rec else "the logs hold no exposures or a single arm",
        ),
        (
            "coupon (which discount is offered)",
            "yes" if coupon else "no",
            "the logs vary the offered coupon" if coupon else "the logs hold no coupon variation",
        ),
    ]
    warnings = []
    if not (rec and coupon):
        missing = " and ".join(w for w, ok in (("recommendations", rec), ("coupons", coupon)) if not ok)
        warnings.append(
            f"These logs cannot identify the effect of {missing}: the learned simulator makes that effect "
            "exactly zero, so policies trained on it are not evidence of what those actions do. What the "
            "logs do support: retention forecasts and the simulator's fidelity (shown first)."
        )
    if not has_world:
        warnings.append("Real logs, no world: true values cannot be computed; the truth column is skipped.")
    return table, warnings


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "—"


def _types(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n:,}" for kind, n in counts.items())


def campaign_section(fid: FidelityResults) -> dict | None:
    """What the campaigns and coupons of Complete Journey logs hold (``rows``: what, count)
    and what they do and do not identify (``statements``), from the fidelity stage's counts
    (:class:`~retentionrl.interactions.adapters.complete_journey.CampaignSummary`) and the
    simulator's card; None for other logs."""
    s = fid.campaigns
    if s is None:
        return None
    rows = [
        ("households in the log", f"{s.households:,}"),
        (
            "baskets",
            f"{s.baskets:,}; with a coupon discount: {s.coupon_baskets:,} ({_share(s.coupon_baskets, s.baskets)})",
        ),
        (
            "transaction lines",
            f"{s.lines:,}; with a coupon discount (coupon_disc): {s.coupon_lines:,} ({_share(s.coupon_lines, s.lines)}); "
            f"with the store's match of one (coupon_match_disc): {s.match_lines:,}",
        ),
        ("households with a coupon discount", f"{s.coupon_households:,} ({_share(s.coupon_households, s.households)})"),
    ]
    if s.campaigns_by_type is not None:
        rows.append(("campaigns", f"{s.campaigns:,} ({_types(s.campaigns_by_type)})"))
    if s.households_reached is not None:
        by_type = f"; by campaign type: {_types(s.reached_by_type)}" if s.reached_by_type is not None else ""
        rows.append(
            (
                "households that received at least one campaign",
                f"{s.households_reached:,} ({_share(s.households_reached, s.households)}){by_type}",
            )
        )
        if s.reached_baskets is not None:
            rows.append(("baskets per household in the log", _baskets_per_household(s)))
        rows.append(("households with a coupon discount and no campaign", f"{s.coupon_households_not_reached:,}"))
    if s.coupons is not None:
        rows.append(("coupons (coupons table)", f"{s.coupons:,} coupon UPCs on {s.coupon_products:,} products"))
    if s.redemptions is not None:
        rows.append(("campaign coupon redemptions", f"{s.redemptions:,} by {s.redeeming_households:,} households"))
    source = s.source if s.source == PACKAGE_SOURCE else f"the folder {s.source}"
    return {"source": source, "absent": s.absent, "rows": rows, "statements": _campaign_statements(s, fid)}


def _per(total: int, n: int) -> str:
    return f"{total / n:.1f}" if n else "—"


def _baskets_per_household(s: CampaignSummary) -> str:
    """Mean baskets of the households that received a campaign and of the others."""
    reached, baskets = s.households_reached or 0, s.reached_baskets or 0
    return (
        f"{_per(baskets, reached)} for households that received a campaign, "
        f"{_per(s.baskets - baskets, s.households - reached)} for the others"
    )


def _campaign_statements(s: CampaignSummary, fid: FidelityResults) -> list[str]:
    """What the campaigns and coupons identify, in words, from the counts."""
    coupon_tables = (
        f"The coupons table maps each campaign's coupons to products ({s.coupons:,} coupon UPCs, "
        f"{s.coupon_products:,} products), not to households or baskets, so the logs say at most which "
        "campaigns a household received, never"
        if s.coupons is not None
        else "The coupons table is absent here; in any case the transactions never say"
    )
    not_reached = (
        f" {s.coupon_households_not_reached:,} households with coupon discounts received no campaign: the "
        "discounts are not only the campaigns' coupons."
        if s.coupon_households_not_reached
        else ""
    )
    statements = [
        "Coupons redeemed are recorded, coupons offered are not. A line's coupon_disc says a manufacturer "
        f"coupon paid part of it ({s.coupon_lines:,} lines, {_share(s.coupon_lines, s.lines)}; "
        f"{s.coupon_baskets:,} baskets, {_share(s.coupon_baskets, s.baskets)}), not which coupon. "
        f"{coupon_tables} which coupon it was offered at a visit: no visit carries an offer to compare with a "
        f"visit without one.{not_reached}"
    ]
    if s.households_reached is not None:
        types = f" ({_types(s.campaigns_by_type)})" if s.campaigns_by_type is not None else ""
        campaigns = f"the {s.campaigns:,} campaigns{types}" if s.campaigns is not None else "the campaigns"
        differ = (
            " The two groups differ: households that received a campaign made "
            f"{_per(s.reached_baskets, s.households_reached)} baskets each in the log, the others "
            f"{_per(s.baskets - s.reached_baskets, s.households - s.households_reached)}."
            if s.reached_baskets is not None
            else ""
        )
        statements.append(
            "Campaigns were sent to chosen households, not assigned at random. The campaigns table lists "
            f"{s.households_reached:,} of the {s.households:,} households "
            f"({_share(s.households_reached, s.households)}) as receiving at least one of {campaigns}; the other "
            f"{s.households - s.households_reached:,} received none.{differ} The data do not say how households "
            "were chosen, so any comparison of households that received a campaign with those that did not "
            "mixes the campaign's effect with the reasons for the choice. No assignment probabilities "
            "(propensities) are recorded, so no reweighting can undo the selection, and no date says when a "
            "household received a campaign (only each campaign's start and end)."
        )
    else:
        statements.append(
            "The campaigns table (which households received which campaign) is absent here: who received a "
            "campaign cannot be counted. The transactions record no assignment probabilities (propensities)."
        )
    statements.append(
        "No recommendation impressions: the logs hold purchases only, so what a household was shown at a "
        "visit is unknown."
    )
    redeemed = fid.heads.get("redeemed")
    if redeemed is None:
        head = ""
    elif redeemed.learned:
        head = (
            f" Its redemption head learned, on {redeemed.examples:,} training visits, how often a purchase "
            "redeems a coupon: that is not the effect of offering one."
        )
    else:
        never = ": no simulated household ever redeems a coupon" if redeemed.examples == 0 else ""
        head = f" Its redemption head is not learned ({redeemed.reason}){never}."
    if fid.identifies_recommendation or fid.identifies_coupon:
        simulator = (
            "So no action effect the learned simulator learns from these logs is causal: the actions it varies "
            "were not assigned at random and carry no propensities."
        )
    else:
        simulator = (
            "So the learned simulator learns no action effect from these logs, causally or otherwise: "
            "neither the recommendation nor the coupon varies in them, so both are fixed inputs of the model "
            "and a policy's actions change nothing a simulated household does."
        )
    statements.append(
        f"{simulator}{head} Logged redemptions enter only as an outcome of a logged visit (a basket with a "
        "coupon discount), which the model reads when it predicts the household's next return: that "
        "association of redeeming with returning is not the effect of a coupon."
    )
    statements.append(
        "The agents' and baselines' values in this report are values in the learned simulator: the "
        "simulator's extrapolation, not evidence of what a campaign, a coupon or a recommendation would do "
        "to these households."
    )
    statements.append(
        "What an experiment would need: campaigns or coupon offers assigned to households at random, or with "
        "recorded assignment probabilities; each offer logged per household with its date and coupon, and "
        "each redemption linked to its offer; for recommendations, the impressions shown at each visit with "
        "their propensities."
    )
    return statements


def _recommendation(results: EvaluateResults) -> dict[str, str]:
    """The selection's headline, and the chosen policy's true return visits and profit when the world is known."""
    world = results.policies[results.recommendation.policy].world
    true_value = (
        f"return visits {fmt(world.values['return_visits'])}, profit {fmt(world.values['profit'], 2)}" if world else ""
    )
    return {"headline": results.recommendation.headline(), "true_value": true_value}


def reward_scale_note(run: dict, data: dict) -> str:
    """The report's sentence on the profit terms' scale :math:`S` (:mod:`retentionrl.envs.reward`)
    and where it came from: the train logs (the split's ``reward_scale``) or the config."""
    scale = float(run["revenue_scale"])
    head = f"Profit enters the rewards as profit / S, S = {scale:.3g} (the mixed reward: w x return + (1 - w) x profit / S)"
    stats = data.get("reward_scale") or {}
    if stats.get("revenue_scale") is not None and abs(stats["revenue_scale"] - scale) <= 1e-9 * scale:
        return (
            f"{head}: the profit per visit of the train logs ({stats['profit_per_visit']:.3g}) over their share of visits "
            f"followed by a return within H ({stats['return_share']:.3f}; {stats['visits']:,} visits whose window "
            "closed before the logs ended), so that w = 0.5 weighs a return and the profit of a visit as the logs "
            "trade them."
        )
    return f"{head}, as the config sets it."


def write_report(
    out_dir: str | Path, data: dict, fidelity: FidelityResults, results: EvaluateResults, run: dict
) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the HTML path."""
    import json

    out = Path(out_dir)
    plot_retention(results, fidelity, out / "retention.png")
    plot_spend(results, out / "spend_retention.png")
    plot_fidelity(fidelity, out / "fidelity.png")
    plot_frontier(results, out / "frontier.png")
    identification, warnings = _identification(fidelity, results.has_world)
    notes = list(results.notes)
    if not data["records_cogs"]:
        notes.insert(0, NO_COGS_NOTE)
    if results.propensity_note:
        warnings.append(
            "Off-policy estimates rest on estimated propensities (a logging-policy clone), not logged ones."
        )
    days, fid_rows = _fidelity_rows(fidelity)
    html = render(
        "pipeline.html",
        data=data,
        h=results.horizon_days,
        warnings=warnings,
        notes=notes,
        identification=identification,
        campaigns=campaign_section(fidelity),
        heads=sorted(fidelity.heads.items()),
        fidelity_first=bool(warnings and not (fidelity.identifies_recommendation and fidelity.identifies_coupon)),
        fid_policy=fidelity.policy,
        fid_days=days,
        fid_rows=fid_rows,
        has_world=results.has_world,
        value_tables=_value_tables(results),
        behaviour=_behaviour(results),
        heldout_states=results.heldout_states,
        at_risk=f"{AT_RISK_DAYS:g}",
        loyal=LOYAL_VISITS,
        config=json.dumps(run, indent=2),
        out=run["out"],
        recommendation=_recommendation(results),
        rewards=list(results.rewards.items()),
        reward_scale=reward_scale_note(run, data),
        certificate=results.certificate.headline()
        if results.certificate is not None
        else f"no certificate: {results.no_certificate}",
        candidate_certificates=[(m, c.headline()) for m, c in results.candidate_certificates.items()],
        candidate_count=next(
            (int(c.validation.get("candidates", 1)) for c in results.candidate_certificates.values()), 0
        ),
        frontier_tables=_frontier_tables(results),
    )
    return write_page(out / "index.html", html)
