"""Print the import graph between the project's packages and fail on an import against the layers.

The library is layered, each layer importing only the ones above it in this list:

    retentionrl.core          contracts every stage shares (actions, Policy, atomic writes, checks)
    retentionrl.interactions  event logs: schema, adapters, visits, splits
    retentionrl.simulators    the ground-truth world, the learned simulator, fidelity
    retentionrl.envs          Gymnasium environments over any simulator
    retentionrl.agents        PPO/DQN training, baselines, the policy factory
    retentionrl.evaluation    off-policy estimators, certificates, frontier
    retentionrl.{pipeline,report,tune,serve}  the application's stages, report, sweeps and service
    retentionrl.cli           the command line, which nothing imports

No library module imports the application, and nothing installed imports a study from
``experiments/``. Usage: ``python .ci/import_graph.py`` (exit 1 on a violation).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {  # import name -> folder in the checkout
    "retentionrl.core": "retentionrl/core",
    "retentionrl.interactions": "interactions",
    "retentionrl.simulators": "simulators",
    "retentionrl.envs": "envs",
    "retentionrl.agents": "agents",
    "retentionrl.evaluation": "evaluation",
    "retentionrl.cli": "retentionrl/cli",
    "retentionrl.pipeline": "retentionrl/pipeline",
    "retentionrl.report": "retentionrl/report",
    "retentionrl.tune": "retentionrl/tune",
    "retentionrl.serve": "retentionrl/serve",
}
LAYER = {name: rank for rank, name in enumerate(list(FOLDERS)[:6])}
APP_RANK = len(LAYER)
for app in ("retentionrl.cli", "retentionrl.pipeline", "retentionrl.report", "retentionrl.tune", "retentionrl.serve"):
    LAYER[app] = APP_RANK


def package_of(module: str) -> str | None:
    """The layer package an absolute module name belongs to (None for third-party modules)."""
    if module.startswith("experiments"):
        return "experiments"
    for name in FOLDERS:
        if module == name or module.startswith(name + "."):
            return name
    return None


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every absolute import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def main() -> int:
    edges: Counter[tuple[str, str]] = Counter()
    violations = []
    for package, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module, line in imports_of(path):
                target = package_of(module)
                if target is None or target == package:
                    continue
                edges[(package, target)] += 1
                if target in ("experiments", "retentionrl.cli") or LAYER[target] > LAYER[package]:
                    violations.append(f"{path.relative_to(ROOT)}:{line}: {package} imports {module}")
    width = max(len(name) for name in FOLDERS)
    print(f"{'package':<{width}}  imports (number of import statements)")
    for package in FOLDERS:
        targets = sorted(((t, n) for (p, t), n in edges.items() if p == package), key=lambda tn: LAYER.get(tn[0], -1))
        print(
            f"{package:<{width}}  " + (", ".join(f"{t.removeprefix('retentionrl.')} ({n})" for t, n in targets) or "-")
        )
    for violation in violations:
        print("layer violation:", violation, file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
