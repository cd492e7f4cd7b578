"""Off-policy evaluation report: Markdown + self-contained HTML (Jinja2, autoescape on) and a
PNG bar chart with intervals, all written atomically (:mod:`retentionrl.core.atomic`)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from retentionrl.evaluation.diagnostics import not_estimable
from retentionrl.evaluation.runner import OPEResult
from retentionrl.core.atomic import atomic_write_bytes, atomic_write_text

_HTML = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>Off-policy evaluation</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}.warn{background:#fee;border:2px solid #c00;padding:.6em}</style>
</head><body><h1>Off-policy evaluation</h1>
<p>Logs: {{ source }}</p>
{% for w in global_warnings %}<p class="warn"><strong>{{ w }}</strong></p>{% endfor %}
<p>{{ explain }}</p>
<img src="ope_estimates.png" alt="estimates with 95% intervals">
{% for r in results %}<h2>{{ r.policy }}</h2>
{% for w in r.warnings %}<p class="warn">{{ w }}</p>{% endfor %}
{% for family, rows, diag in r.tables %}<h3>{{ family }}</h3>
<p>ESS {{ "%.1f"|format(diag.ess) }} of {{ diag.n_units }}; largest weight {{ "%.3g"|format(diag.max_weight) }};
unsupported target mass {{ "%.2f%%"|format(100 * diag.unsupported_mass) }}</p>
<table><tr><th>estimator</th><th>estimate</th><th>95% interval</th><th>lower bound (emp. Bernstein)</th></tr>
{% for name, iv, reason in rows %}<tr><td>{{ name }}</td>{% if reason %}<td colspan="3">{{ reason }}</td>{% else %}
<td>{{ "%.4g"|format(iv.estimate) }}</td><td>[{{ "%.4g"|format(iv.low) }}, {{ "%.4g"|format(iv.high) }}]</td>
<td>{{ "%.4g"|format(iv.lower_bound) }}</td>{% endif %}</tr>{% endfor %}
</table>{% endfor %}{% endfor %}
</body></html>
""")

FAMILIES = (("per decision: profit per visit", "bandit", "bandit_diagnostics"),
            ("per trajectory: return visits per shopper", "trajectory", "trajectory_diagnostics"))
EXPLAIN = ("Per-decision estimators value the target's choice at each logged visit (profit per visit: spend - "
           "coupon cost - cost of goods); "
           "trajectory estimators value whole shopper lifetimes (return visits per shopper). Intervals: "
           "bootstrap over shoppers; lower bound: empirical Bernstein with the observed range (a heuristic).")


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.4g}"


def _views(results: Sequence[OPEResult]) -> list[dict]:
    views = []
    for r in results:
        tables, warnings = [], list(r.notes)
        for title, attr, diag_attr in FAMILIES:
            diag = getattr(r, diag_attr)
            rows = [(name, iv, not_estimable(iv.low, iv.high, diag.ess, diag.n_units))
                    for name, iv in getattr(r, attr).items()]
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
            lines += ["", f"### {title}", "",
                      (f"ESS {diag.ess:.1f} of {diag.n_units}; largest weight {diag.max_weight:.3g}; "
                       f"unsupported target mass {diag.unsupported_mass:.2%}"), "",
                      "| estimator | estimate | 95% interval | lower bound |", "|---|---:|---:|---:|"]
            lines += [f"| {n} | {reason} | | |" if reason else
                      f"| {n} | {_fmt(iv.estimate)} | [{_fmt(iv.low)}, {_fmt(iv.high)}] | {_fmt(iv.lower_bound)} |"
                      for n, iv, reason in rows]
        lines.append("")
    return "\n".join(lines)


def chart(results: Sequence[OPEResult]) -> bytes:
    """PNG: one panel per family, a bar per (policy, estimator) with its interval; estimates
    that are not estimable (:func:`retentionrl.evaluation.diagnostics.not_estimable`) are left out."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (title, attr, diag_attr) in zip(axes, FAMILIES):
        labels, est, err_low, err_high = [], [], [], []
        for r in results:
            diag = getattr(r, diag_attr)
            for name, iv in getattr(r, attr).items():
                if not_estimable(iv.low, iv.high, diag.ess, diag.n_units):
                    continue
                labels.append(f"{r.policy}\n{name}")
                est.append(iv.estimate)
                err_low.append(max(iv.estimate - iv.low, 0) if math.isfinite(iv.low) else 0.0)
                err_high.append(max(iv.high - iv.estimate, 0) if math.isfinite(iv.high) else 0.0)
        ax.bar(range(len(est)), est, yerr=[err_low, err_high], capsize=2, color="#4c72b0")
        ax.set_xticks(range(len(est)), labels, rotation=90, fontsize=6)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_report(out_dir: str | Path, results: Sequence[OPEResult], source: str,
                 global_warnings: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``ope_estimates.png`` into ``out_dir``."""
    out = Path(out_dir)
    paths = {"png": out / "ope_estimates.png", "md": out / "report.md", "html": out / "report.html"}
    atomic_write_bytes(paths["png"], chart(results))
    atomic_write_text(paths["md"], markdown(results, source, global_warnings))
    atomic_write_text(paths["html"], _HTML.render(source=source, global_warnings=list(global_warnings),
                                                  explain=EXPLAIN, results=_views(results)))
    return paths
