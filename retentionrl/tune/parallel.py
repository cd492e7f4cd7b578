"""Fit the members of a simulator ensemble side by side on Ray.

Each member is one Ray task (``cpus_per_fit`` CPUs, torch limited to as many threads) that
reads the log from its path and writes its folder; the caller writes ``ensemble.json``.
A local Ray instance by default, or the cluster at ``address`` (then the log and the output
folder must be on a filesystem every node reads and writes). The members are the fits
:func:`~retentionrl.simulators.learned.fit.fit_simulator` makes one after another, with the
same seeds; a different number of torch threads can change the last bits of a float sum,
so the weights agree up to that rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from retentionrl.simulators.learned.config import FitConfig
from retentionrl.simulators.learned.model_card import ModelCard


def ray_installed() -> bool:
    """Whether Ray can be imported here."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _fit_member(logs: str, fmt: str, config: FitConfig, out: str, threads: int) -> tuple[ModelCard, int]:
    import torch

    from retentionrl.interactions.io import read_events
    from retentionrl.simulators.learned.fit import fit_simulator

    torch.set_num_threads(threads)
    result = fit_simulator(read_events(logs, fmt), config, out, progress=False)
    return result.card, len(result.history)


def fit_members_on_ray(
    logs: Path,
    fmt: str,
    configs: Sequence[FitConfig],
    outs: Sequence[Path],
    *,
    address: str | None = None,
    cpus_per_fit: int = 1,
) -> list[tuple[ModelCard, int]]:
    """Fit ``configs[k]`` on ``logs`` into ``outs[k]``, every k as its own Ray task; each
    fit's model card and number of epochs, in order (the simulators are in ``outs``). Ray
    is shut down afterwards if this call started it."""
    from retentionrl.tune.sweep import init_ray, require_ray

    ray = require_ray()
    started = not ray.is_initialized()
    init_ray(address)
    try:
        task = ray.remote(num_cpus=cpus_per_fit)(_fit_member)
        refs = [
            task.remote(str(Path(logs).resolve()), fmt, c, str(Path(o).resolve()), cpus_per_fit)
            for c, o in zip(configs, outs)
        ]
        return list(ray.get(refs))
    finally:
        if started:
            ray.shutdown()
