"""Off-policy evaluation report: Markdown + HTML (template ``ope.html``) and a PNG bar chart
with intervals, through the project's report system (:mod:`retentionrl.core.report`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from retentionrl.core.interval import Interval
from retentionrl.core.report import pyplot, render, save_png, write_page
from retentionrl.evaluation.diagnostics import WeightDiagnostics, not_estimable
from retentionrl.evaluation.runner import OPEResult

FAMILIES = (
    ("per decision: profit per visit", "bandit", "bandit_diagnostics", True),
    ("per trajectory: return visits per shopper", "trajectory", "trajectory_diagnostics", True),
    (
        "per trajectory, the learned simulator as the model: return visits per shopper",
        "model",
        "trajectory_diagnostics",
        False,
    ),
)
"""(title, OPEResult attribute, its weight diagnostics, whether the ESS rule applies): a
model-based estimate does not rest on the weights alone, so a low ESS does not void it
(:mod:`retentionrl.evaluation.model_based`)."""
EXPLAIN = (
    "Per-decision estimators value the target's choice at each logged visit (profit per visit: spend - "
    "coupon cost - cost of goods); "
    "trajectory estimators value whole shopper lifetimes (return visits per shopper). Intervals: "
    "bootstrap over shoppers; lower bound: empirical Bernstein with the observed range (a heuristic). "
    "Model-based estimates (with --simulator) use the learned simulator's rollouts from each logged "
    "history; their intervals also span the ensemble's members, and where the weights' ESS is low they "
    "rest on the simulator."
)


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.4g}"


def _not_estimable(iv: Interval, diag: WeightDiagnostics, weighted: bool) -> str | None:
    return not_estimable(iv.low, iv.high, diag.ess, diag.n_units) if weighted else not_estimable(iv.low, iv.high)


def _views(results: Sequence[OPEResult]) -> list[dict]:
    views = []
    for r in results:
        tables, warnings = [], list(r.notes)
        for title, attr, diag_attr, weighted in FAMILIES:
            diag = getattr(r, diag_attr)
            rows = [(name, iv, _not_estimable(iv, diag, weighted)) for name, iv in getattr(r, attr).items()]
            if rows:
                tables.append((title, rows, diag))
                warnings += [f"{title.split(':')[0]}: {w}" for w in diag.warnings]
        views.append({"policy": r.policy, "tables": tables, "warnings": list(dict.fromkeys(warnings))})
    return views


def markdown(results: Sequence[OPEResult], source: str, global_warnings: Sequence[str] = ()) -> str:
    lines = ["# Off-policy evaluation", "", f"Logs: `{source}`", ""]
    lines += [f"> **WARNING: {w}**" for w in global_warnings] + ([""] if global_warnings else [])
    lines += [EXPLAIN, "", "![estimates](ope_estimates.png)", ""]
    for v in _views(results):
        lines += [f"## {v['policy']}", ""] + [f"- **warning**: {w}" for w in v["warnings"]]
        for title, rows, diag in v["tables"]:
            lines += [
                "",
                f"### {title}",
                "",
                (
                    f"ESS {diag.ess:.1f} of {diag.n_units}; largest weight {diag.max_weight:.3g}; "
                    f"unsupported target mass {diag.unsupported_mass:.2%}"
                ),
                "",
                "| estimator | estimate | 95% interval | lower bound |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {n} | {reason} | | |"
                if reason
                else f"| {n} | {_fmt(iv.estimate)} | [{_fmt(iv.low)}, {_fmt(iv.high)}] | {_fmt(iv.lower_bound)} |"
                for n, iv, reason in rows
            ]
        lines.append("")
    return "\n".join(lines)


def chart(results: Sequence[OPEResult], path: Path) -> Path:
    """PNG: one panel per family, a bar per (policy, estimator) with its interval; estimates
    that are not estimable (:func:`retentionrl.evaluation.diagnostics.not_estimable`) are left out."""
    families = [f for f in FAMILIES if any(getattr(r, f[1]) for r in results)] or list(FAMILIES[:1])
    fig, axes = pyplot().subplots(1, len(families), figsize=(5.5 * len(families), 4), squeeze=False)
    for ax, (title, attr, diag_attr, weighted) in zip(axes[0], families):
        labels, est, err_low, err_high = [], [], [], []
        for r in results:
            diag = getattr(r, diag_attr)
            for name, iv in getattr(r, attr).items():
                if _not_estimable(iv, diag, weighted):
                    continue
                labels.append(f"{r.policy}\n{name}")
                est.append(iv.estimate)
                err_low.append(max(iv.estimate - iv.low, 0) if math.isfinite(iv.low) else 0.0)
                err_high.append(max(iv.high - iv.estimate, 0) if math.isfinite(iv.high) else 0.0)
        ax.bar(range(len(est)), est, yerr=[err_low, err_high], capsize=2, color="#4c72b0")
        ax.set_xticks(range(len(est)), labels, rotation=90, fontsize=6)
        ax.set_title(title.replace(": ", ":\n", 1), fontsize=9)
    return save_png(fig, path)


def write_report(
    out_dir: str | Path, results: Sequence[OPEResult], source: str, global_warnings: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``ope_estimates.png`` into ``out_dir``."""
    out = Path(out_dir)
    paths = {"png": out / "ope_estimates.png", "md": out / "report.md", "html": out / "report.html"}
    chart(results, paths["png"])
    write_page(paths["md"], markdown(results, source, global_warnings))
    write_page(
        paths["html"],
        render(
            "ope.html", source=source, global_warnings=list(global_warnings), explain=EXPLAIN, results=_views(results)
        ),
    )
    return paths
