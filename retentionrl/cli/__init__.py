"""The ``retentionrl`` command line (:mod:`retentionrl.cli.main`): one module per command group."""

from typing import Literal

Device = Literal["auto", "cpu", "cuda"]
"""The values of every ``--device`` option: auto (CUDA when present), cpu or cuda."""
