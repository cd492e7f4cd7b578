"""Atomic writes leave the old file intact when writing fails (a full disk, say)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from retentionrl.core.atomic import atomic_path, atomic_write_text


def test_write_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["report.txt"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "report.txt"
    target.write_text("old report")
    with pytest.raises(OSError) as info:
        with atomic_path(target) as tmp:
            tmp.write_text("half of a new re")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]
