"""The project's one report system: HTML pages and PNG plots, written atomically.

Every report (the pipeline's, ``retentionrl ope``'s, ``retentionrl simulator report``'s) is a
Jinja2 template in ``retentionrl/core/templates/`` extending ``base.html`` (one layout and
style sheet), rendered with autoescape on and undefined names refused
(:func:`render`); its plots come from :func:`pyplot` (matplotlib's Agg backend, no
display needed) through :func:`save_png`; :func:`write_page` writes the page. Files are
written atomically (:mod:`retentionrl.core.atomic`) and left readable by others (a report
is for reading; temporary files are created 0600).

Filters for templates: ``num`` (integers with thousands separators, floats to 4 decimals,
``n/a`` for NaN, blank for None).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2

from retentionrl.core.atomic import atomic_path, atomic_write_text

TEMPLATES = Path(__file__).parent / "templates"
READABLE = 0o644


def _num(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    return str(value)


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
_ENV.filters["num"] = _num


def render(template: str, **context: Any) -> str:
    """The HTML of ``templates/<template>`` with ``context``."""
    return _ENV.get_template(template).render(**context)


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: reports only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 90) -> Path:
    """Write ``fig`` as a PNG (tight layout) to ``path`` atomically, close it; returns the path."""
    path = Path(path)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    pyplot().close(fig)
    os.chmod(path, READABLE)
    return path


def write_page(path: str | Path, text: str) -> Path:
    """Write a report file (HTML, Markdown, JSON) atomically, readable by others."""
    path = Path(path)
    atomic_write_text(path, text)
    os.chmod(path, READABLE)
    return path
