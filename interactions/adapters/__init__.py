"""Readers for public shopper datasets, and recognition of their files by column names.

================  ==============================  ============================================
format            reader                          result
================  ==============================  ============================================
online-retail     :func:`read_online_retail`      ``(events, dropped rows by reason)``
complete-journey  :func:`read_complete_journey`   ``(events, dropped rows by reason)``
cdnow             :func:`read_cdnow`              ``(events, dropped rows by reason)``
hillstrom         :func:`read_hillstrom`          :class:`~retentionrl.interactions.bandit.BanditFeedback`
obd               :func:`read_obd`                :class:`~retentionrl.interactions.bandit.BanditFeedback`
================  ==============================  ============================================

``read_bts_action_dist`` reads the evaluation policy of OBD's Random → BTS experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from retentionrl.interactions.adapters import cdnow, complete_journey, hillstrom, obd, online_retail
from retentionrl.interactions.adapters.cdnow import read_cdnow
from retentionrl.interactions.adapters.complete_journey import read_complete_journey
from retentionrl.interactions.adapters.hillstrom import read_hillstrom
from retentionrl.interactions.adapters.obd import read_bts_action_dist, read_obd
from retentionrl.interactions.adapters.online_retail import read_online_retail
from retentionrl.interactions.bandit import BanditFeedback

EVENT_ADAPTERS: dict[str, Callable[[str | Path], tuple[pd.DataFrame, dict[str, int]]]] = {
    "online-retail": read_online_retail,
    "complete-journey": read_complete_journey,
    "cdnow": read_cdnow,
}
"""Formats read as event logs: ``reader(path) -> (events, dropped)``."""

BANDIT_ADAPTERS: dict[str, Callable[[str | Path], BanditFeedback]] = {
    "hillstrom": read_hillstrom,
    "obd": read_obd,
}
"""Formats read as bandit feedback: ``reader(path) -> BanditFeedback``."""

SIGNATURES: dict[str, tuple[str, ...]] = {
    "online-retail": online_retail.SIGNATURE_COLUMNS,
    "complete-journey": complete_journey.SIGNATURE_COLUMNS,
    "cdnow": cdnow.SIGNATURE_COLUMNS,
    "hillstrom": hillstrom.SIGNATURE_COLUMNS,
    "obd": obd.SIGNATURE_COLUMNS,
}
"""Columns whose presence identifies each format."""


def detect_format(columns: Sequence[str]) -> str | None:
    """The format whose signature columns all appear in ``columns``, or ``None``.

    Names must match exactly (case included); other columns may be present.
    """
    present = set(map(str, columns))
    for name, signature in SIGNATURES.items():
        if present.issuperset(signature):
            return name
    return None


__all__ = [
    "BANDIT_ADAPTERS",
    "EVENT_ADAPTERS",
    "SIGNATURES",
    "detect_format",
    "read_bts_action_dist",
    "read_cdnow",
    "read_complete_journey",
    "read_hillstrom",
    "read_obd",
    "read_online_retail",
]
