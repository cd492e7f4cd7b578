"""The pipeline's report: one self-contained HTML page (Jinja2, autoescape on) and its PNGs.

Sections, in order (fidelity first where the logs cannot identify any action effect):
what the logs identify; per policy the true value in the world, the value in the learned
simulator and the off-policy estimates, each with its 95% interval and sample size;
the retention-profit frontier (which agent dominates which baseline and world heuristic);
retention curves of all policies on one plot; coupon spend vs retention; simulator
fidelity; what each policy does by shopper segment; the run's config. Nothing in it
names a shopper: only policies, segments, item groups and counts.
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2

from retentionrl.evaluation.diagnostics import not_estimable
from retentionrl.pipeline.measure import AT_RISK_DAYS, LOYAL_VISITS, SEGMENTS
from retentionrl.core.atomic import atomic_path, atomic_write_text

METRICS = (("return_visits", "return visits / shopper"), ("active_at_horizon", "active at H"),
           ("profit", "profit / shopper"), ("coupon_cost", "coupon cost / shopper"))
OPE_COLUMNS = (("bandit", "dr", "DR: profit / visit"), ("trajectory", "dr", "DR: return visits / lifetime"),
               ("trajectory", "wis", "WIS: return visits / lifetime"))

NO_COGS_NOTE = ("These logs record no cost of goods (no unit_cost column): profit is net revenue (spend - coupon "
                "cost), so it overstates what the shop keeps, and by more for policies that sell more.")

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>retentionrl report</title>
<style>body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}
td:first-child,th:first-child{text-align:left}.warn{background:#fee;border:2px solid #c00;padding:.6em}
.note{background:#ffd;border:1px solid #cc8;padding:.6em}small{color:#555}img{max-width:100%}</style>
</head><body>
<h1>retentionrl: from logs to retention policies</h1>
<p class="note" id="recommendation"><strong>{{ recommendation.headline }}</strong> Chosen by its value in the
learned simulator on fresh shoppers, never by world truth{% if has_world %}; in the world, for the record
only: {{ recommendation.true_value }}{% endif %}.</p>
<p class="note" id="certificate"><strong>Certificate against the logging policy, on the held-out logs:</strong>
{{ certificate }}</p>
<p>Logs: <code>{{ data.source }}</code> ({{ data.format }}): {{ "{:,}".format(data.events) }} events of
{{ "{:,}".format(data.users) }} shoppers, {{ data.log_start }} to {{ data.log_end }};
{{ "{:,}".format(data.train_users) }} shoppers fit the simulator and train nothing else,
{{ "{:,}".format(data.heldout_users) }} are held out for fidelity and off-policy evaluation.
Horizon H = {{ h }} days. Every number is a mean with its 95% interval and its sample size n. Profit =
spend - coupon cost - cost of goods.</p>
{% for w in warnings %}<p class="warn"><strong>{{ w }}</strong></p>{% endfor %}
{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}

<h2 id="identification">What these logs can identify</h2>
<table><tr><th>action effect</th><th>identified</th><th>why</th></tr>
{% for row in identification %}<tr><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td>{{ row[2] }}</td></tr>{% endfor %}
</table>
<table><tr><th>simulator head</th><th>learned</th><th>training visits</th><th>reason when not</th></tr>
{% for name, head in heads %}<tr><td>{{ name }}</td><td>{{ "yes" if head.learned else "no" }}</td>
<td>{{ "{:,}".format(head.examples) }}</td><td>{{ head.reason }}</td></tr>{% endfor %}</table>

{% macro fidelity_section() %}
<h2 id="fidelity">Simulator fidelity: retention of held-out shoppers</h2>
<p>Logged: Kaplan-Meier curve of the held-out shoppers' first lifetimes; churn is known only H days after a
last visit, so a lifetime still open at the log's end is censored H days before it, and days the log is too
short for are left out. Simulated: {{ fid_policy }} acting on
fresh shoppers of the learned simulator. Shares still active at each day.</p>
<table><tr><th></th>{% for d in fid_days %}<th>day {{ d }}</th>{% endfor %}<th>return visits within H</th></tr>
{% for label, row in fid_rows %}<tr><td>{{ label }}</td>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
<img src="fidelity.png" alt="logged vs simulated retention">
{% endmacro %}

{% if fidelity_first %}{{ fidelity_section() }}{% endif %}

<h2 id="values">Policies: true value, value in the learned simulator, off-policy estimates</h2>
{% if not has_world %}<p class="note">No ground truth: these logs come from a real shop, not from the world, so the
"true value" column is skipped. Only the simulator's values and the off-policy estimates remain.</p>{% endif %}
{% for title, table in value_tables %}<h3>{{ title }}</h3>
<table><tr>{% for c in table.header %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in table.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>
{% for n in table.notes %}<p><small>{{ n }}</small></p>{% endfor %}{% endfor %}

<h2 id="frontier">Retention-profit frontier</h2>
<p>Every policy as (return visits, profit) per shopper. An agent <em>dominates</em> a baseline when it is at least
as good on both axes within the 95% intervals (they overlap or it is above) and better on one beyond them (its
interval lies wholly above). Agents: {% for name, label in rewards %}<code>{{ name }}</code> trained on the
{{ label }} reward{{ ", " if not loop.last else "." }}{% endfor %}</p>
<img src="frontier.png" alt="profit vs return visits of every policy">
{% for title, rows in frontier_tables %}<h3>Dominance {{ title }}</h3>
<table><tr><th>policy</th><th>kind</th><th>dominated by</th><th>on the frontier</th></tr>
{% for r in rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td><td>{{ r[3] }}</td></tr>{% endfor %}
</table>{% endfor %}

<h2 id="retention">Retention curves of all policies</h2>
<img src="retention.png" alt="retention curves of all policies">
<h2 id="spend">Coupon spend vs retention</h2>
<img src="spend_retention.png" alt="coupon spend vs retention">

{% if not fidelity_first %}{{ fidelity_section() }}{% endif %}

<h2 id="behaviour">What each policy does, by shopper segment</h2>
<p>On the {{ "{:,}".format(heldout_states) }} logged states of held-out shoppers. Segments from the observation:
<em>new</em> = first visit; <em>at risk</em> = {{ at_risk }}+ days since the last visit; <em>loyal</em> =
{{ loyal }}+ prior visits; <em>regular</em> = the rest. Coupon rate = probability of offering any coupon
(95% interval over states); top groups = the recommendation arms with the most probability.</p>
{% for name, rows in behaviour %}<h3>{{ name }}</h3>
<table><tr><th>segment</th><th>n states</th><th>coupon rate</th><th>most recommended groups (share)</th></tr>
{% for r in rows %}<tr><td>{{ r[0] }}</td><td>{{ r[1] }}</td><td>{{ r[2] }}</td><td>{{ r[3] }}</td></tr>{% endfor %}
</table>{% endfor %}

<h2 id="config">Run</h2>
<pre>{{ config }}</pre>
<p>TensorBoard: <code>tensorboard --logdir {{ out }}</code> (the simulator fit and each agent's training).</p>
</body></html>
""")


def fmt(e: dict | None, digits: int = 3) -> str:
    """``mean [low, high]`` of an estimate dict; an em dash where there is none."""
    if not e or e.get("mean") is None or not math.isfinite(e["mean"]):
        return "—"
    low, high = e.get("low"), e.get("high")
    if low is None or not (math.isfinite(low) and math.isfinite(high)):
        return f"{e['mean']:.{digits}g}"
    return f"{e['mean']:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def _step(ax, curve: dict, label: str, **style) -> None:
    ax.step(curve["days"], curve["survival"], where="post", label=f"{label} (n={curve['n']:,})", **style)
    ax.fill_between(curve["days"], curve["lower"], curve["upper"], step="post", alpha=0.12)


def plot_retention(results: dict, fidelity: dict, path: Path) -> None:
    """One panel per place a policy ran (world, learned simulator), every policy's curve."""
    plt = _pyplot()
    places = [p for p in ("world", "simulator") if any(p in r for r in results["policies"].values())]
    fig, axes = plt.subplots(1, len(places), figsize=(6.5 * len(places), 4.2), squeeze=False)
    h = results["horizon_days"]
    for ax, place in zip(axes[0], places):
        for name, row in results["policies"].items():
            _step(ax, row[place]["curve"], name)
        _step(ax, fidelity["logged"]["curve"], "held-out logs", color="black", ls="--")
        ax.set(xlim=(0, h), ylim=(0, 1.02), xlabel="days since first visit", ylabel="share still active",
               title={"world": "true world", "simulator": "learned simulator"}[place])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_spend(results: dict, path: Path) -> None:
    """Coupon cost per shopper vs share active at H, with 95% intervals, per policy."""
    plt = _pyplot()
    place = "world" if results["has_world"] else "simulator"
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, row in results["policies"].items():
        v = row[place]["values"]
        x, y = v["coupon_cost"], v["active_at_horizon"]
        ax.errorbar(x["mean"], y["mean"], xerr=[[x["mean"] - x["low"]], [x["high"] - x["mean"]]],
                    yerr=[[y["mean"] - y["low"]], [y["high"] - y["mean"]]], fmt="o", capsize=3, label=name)
    ax.set(xlabel="coupon cost per shopper over H", ylabel="share active at H",
           title=f"coupon spend vs retention ({'true world' if place == 'world' else 'learned simulator'}, "
                 f"n={results['n_eval_users']:,} shoppers each)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


_MARKERS = {"agent": ("o", "tab:blue"), "baseline": ("s", "tab:green"), "heuristic": ("^", "tab:orange")}


def plot_frontier(results: dict, path: Path) -> None:
    """Profit vs return visits per shopper with 95% intervals, one panel per place: agents
    (blue circles), baselines fit on the logs (green squares), world heuristics (orange
    triangles); policies at the same point share one label; the agents on the frontier are
    joined by a line."""
    plt = _pyplot()
    places = [p for p in ("world", "simulator") if p in results["frontier"]]
    fig, axes = plt.subplots(1, len(places), figsize=(6.8 * len(places), 5.2), squeeze=False)
    for ax, place in zip(axes[0], places):
        on_frontier, labels = [], {}
        for name, row in results["policies"].items():
            if place not in row:
                continue
            kind = results["kinds"][name]
            x, y = row[place]["values"]["return_visits"], row[place]["values"]["profit"]
            marker, color = _MARKERS[kind]
            ax.errorbar(x["mean"], y["mean"], xerr=[[x["mean"] - x["low"]], [x["high"] - x["mean"]]],
                        yerr=[[y["mean"] - y["low"]], [y["high"] - y["mean"]]], fmt=marker, color=color, capsize=2,
                        ms=5, lw=0.8)
            labels.setdefault((round(x["mean"], 3), round(y["mean"], 3)), []).append(name)
            if kind == "agent" and name in results["frontier"][place]["frontier"]:
                on_frontier.append((x["mean"], y["mean"]))
        for (x, y), names in labels.items():
            ax.annotate(" = ".join(names), (x, y), fontsize=6.5, xytext=(3, 3), textcoords="offset points")
        if len(on_frontier) > 1:
            ax.plot(*zip(*sorted(set(on_frontier))), color="tab:blue", lw=0.8, alpha=0.6)
        for kind, (marker, color) in _MARKERS.items():
            ax.plot([], [], marker, color=color, label={"agent": "agent", "baseline": "baseline (fit on the logs)",
                                                         "heuristic": "world heuristic"}[kind])
        ax.set(xlabel="return visits per shopper over H", ylabel="profit per shopper over H",
               title="true world" if place == "world" else "learned simulator")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{results['n_eval_users']:,} fresh shoppers per policy, 95% intervals", fontsize=9)
    _save(fig, path)


def _frontier_tables(results: dict) -> list[tuple[str, list]]:
    """Per place: each baseline and heuristic with the agents that dominate it."""
    tables = []
    for place, title in (("world", "in the true world"), ("simulator", "in the learned simulator")):
        if place not in results["frontier"]:
            continue
        part = results["frontier"][place]
        rows = [(name, results["kinds"][name], ", ".join(agents) if agents else "no agent",
                 "yes" if name in part["frontier"] else "no") for name, agents in part["dominated_by"].items()]
        tables.append((title, rows))
    return tables


def plot_fidelity(fidelity: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    _step(ax, fidelity["logged"]["curve"], "held-out logs (Kaplan-Meier)", color="black")
    _step(ax, fidelity["simulated"]["curve"], f"learned simulator, {fidelity['policy']}")
    ax.set(xlim=(0, fidelity["horizon_days"]), ylim=(0, 1.02), xlabel="days since first visit",
           ylabel="share still active", title="simulated vs logged retention")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def _value_tables(results: dict) -> list[tuple[str, dict]]:
    tables = []
    n = results["n_eval_users"]
    for place, title in (("world", "True value in the world"), ("simulator", "Value in the learned simulator")):
        # in the simulator with an ensemble, also each candidate's return visits in each member alone
        members = place == "simulator" and any("members" in row for row in results["policies"].values())
        rows = [[name + (" (world heuristic)" if results["kinds"][name] == "heuristic" else ""),
                 *(fmt(row[place]["values"][m]) for m, _ in METRICS),
                 *([" / ".join(f"{v['return_visits']['mean']:.2f}" for v in row.get("members", [])) or "—"]
                   if members else [])]
                for name, row in results["policies"].items() if place in row]
        header = ["policy", *(label for _, label in METRICS), *(["return visits in each simulator"] if members else [])]
        notes = (["The simulator columns are the ensemble's (each shopper in one member); the last column is each "
                  "member alone, where the selection takes the least favourable (heuristics are not candidates)."]
                 if members else [])
        if rows:
            tables.append((f"{title} (n = {n:,} fresh shoppers per policy, over H = {results['horizon_days']} days)",
                           {"header": header, "rows": rows, "notes": notes}))
    if results["ope"]:
        rows, notes = [], []
        for name, o in results["ope"].items():
            rows.append([name, *(_ope_cell(o, fam, est) for fam, est, _ in OPE_COLUMNS),
                         f"{o['n_visits']:,} / {o['n_trajectories']:,}", f"{o['ess']:.1f}"])
            notes += [f"{name}: {w}" for w in o["warnings"]]
        if results["propensity_note"]:
            notes.insert(0, "Rests on estimated propensities: " + results["propensity_note"])
        tables.append(("Off-policy estimates on held-out logs (bootstrap over shoppers)",
                       {"header": ["policy", *(label for *_, label in OPE_COLUMNS), "n visits / lifetimes",
                                   "ESS (lifetimes)"], "rows": rows, "notes": notes}))
    return tables


def _ope_cell(o: dict, family: str, estimator: str) -> str:
    """An off-policy estimate as ``mean [low, high]``, or why it is not estimable from the
    logs (:func:`retentionrl.evaluation.diagnostics.not_estimable`): the family's ESS over its units
    (visits for per-decision estimators, lifetimes for trajectory ones)."""
    e = o[family].get(estimator)
    if e is None:
        return "—"
    ess, n = (o["bandit_ess"], o["n_visits"]) if family == "bandit" else (o["ess"], o["n_trajectories"])
    return not_estimable(e["low"], e["high"], ess, n) or fmt(e)


def _behaviour(results: dict) -> list[tuple[str, list]]:
    out = []
    for name, row in results["policies"].items():
        rows = []
        for seg in SEGMENTS:
            b = row["behaviour"][seg]
            if "coupon_rate" not in b:
                rows.append([seg, f"{b['n']:,}", "—", "—"])
                continue
            top = ", ".join(f"{_arm(t['arm'])} ({t['share']:.0%})" for t in b["top_arms"])
            rows.append([seg, f"{b['n']:,}", fmt(b["coupon_rate"], 2), top])
        out.append((name, rows))
    return out


def _arm(name: str) -> str:
    return f"group {name}" if name.isdigit() else name


def _fidelity_rows(fid: dict) -> tuple[list, list]:
    h = str(fid["horizon_days"])
    days = ["7", "30", h]
    rows = []
    for label, part, returns in (("held-out logs", fid["logged"], fid["logged"].get("return_visits")),
                                 ("learned simulator", fid["simulated"], fid["simulated"]["values"]["return_visits"])):
        n = part["curve"]["n"]
        cells = [f"{fmt(part['curve']['at'][d])} (n={n:,})" if part["curve"]["at"][d] else "— (log too short)"
                 for d in days]
        cells.append(f"{fmt(returns)} (n={returns['n']:,})" if returns else "— (no shopper observed for H days)")
        rows.append((label, cells))
    return days, rows


def _identification(fid: dict, has_world: bool) -> tuple[list, list[str]]:
    rec, coupon = fid["identifies_recommendation"], fid["identifies_coupon"]
    table = [("recommendation (which group is shown)", "yes" if rec else "no",
              "the logs vary the recommended arm" if rec else "the logs hold no exposures or a single arm"),
             ("coupon (which discount is offered)", "yes" if coupon else "no",
              "the logs vary the offered coupon" if coupon else "the logs hold no coupon variation")]
    warnings = []
    if not (rec and coupon):
        missing = " and ".join(w for w, ok in (("recommendations", rec), ("coupons", coupon)) if not ok)
        warnings.append(f"These logs cannot identify the effect of {missing}: the learned simulator makes that effect "
                        "exactly zero, so policies trained on it are not evidence of what those actions do. What the "
                        "logs do support: retention forecasts and the simulator's fidelity (shown first).")
    if not has_world:
        warnings.append("Real logs, no world: true values cannot be computed; the truth column is skipped.")
    return table, warnings


def _recommendation(results: dict) -> dict[str, str]:
    """The selection's headline, and the chosen policy's true return visits and profit when the world is known."""
    chosen = results["recommendation"]["policy"]
    world = results["policies"][chosen].get("world")
    true_value = (f"return visits {fmt(world['values']['return_visits'])}, profit {fmt(world['values']['profit'], 2)}"
                  if world else "")
    return {"headline": results["recommendation"]["headline"], "true_value": true_value}


def write_report(out_dir: str | Path, data: dict, fidelity: dict, results: dict, run: dict) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir``; returns the HTML path."""
    import json

    out = Path(out_dir)
    plot_retention(results, fidelity, out / "retention.png")
    plot_spend(results, out / "spend_retention.png")
    plot_fidelity(fidelity, out / "fidelity.png")
    plot_frontier(results, out / "frontier.png")
    identification, warnings = _identification(fidelity, results["has_world"])
    notes = list(results["notes"])
    if not data["records_cogs"]:
        notes.insert(0, NO_COGS_NOTE)
    if results["propensity_note"]:
        warnings.append("Off-policy estimates rest on estimated propensities (a logging-policy clone), not logged ones.")
    days, fid_rows = _fidelity_rows(fidelity)
    html = _TEMPLATE.render(
        data=data, h=results["horizon_days"], warnings=warnings, notes=notes, identification=identification,
        heads=sorted(fidelity["card"]["heads"].items()), fidelity_first=bool(warnings and not
                                                                              (fidelity["identifies_recommendation"]
                                                                               and fidelity["identifies_coupon"])),
        fid_policy=fidelity["policy"], fid_days=days, fid_rows=fid_rows, has_world=results["has_world"],
        value_tables=_value_tables(results), behaviour=_behaviour(results), heldout_states=results["heldout_states"],
        at_risk=f"{AT_RISK_DAYS:g}", loyal=LOYAL_VISITS, config=json.dumps(run, indent=2), out=run["out"],
        recommendation=_recommendation(results), rewards=list(results["rewards"].items()),
        certificate=results["certificate"].get("headline") or
        f"{results['certificate']['verdict']}: {results['certificate']['reason']}",
        frontier_tables=_frontier_tables(results))
    atomic_write_text(out / "index.html", html)
    for path in out.iterdir():  # temp files are created 0600; a report is for reading
        if path.suffix in (".html", ".png"):
            path.chmod(0o644)
    return out / "index.html"
