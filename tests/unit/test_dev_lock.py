"""`<data-dir>/dev.lock`: one `actormesh dev` per data directory (`local.dev_handle.locked_data_dir`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actormesh_runtime.local.dev_handle import LOCK_NAME, DataDirBusy, locked_data_dir


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with locked_data_dir(data):
        assert (data / LOCK_NAME).read_text().strip() == str(os.getpid())
        # flock locks belong to open files, not processes: a second open in this process conflicts too.
        pid = os.getpid()
        with (
            pytest.raises(DataDirBusy, match=f"another actormesh dev \\(pid {pid}\\)") as busy,
            locked_data_dir(data),
        ):
            pass
        assert busy.value.pid == os.getpid()
        assert str(data / LOCK_NAME) in str(busy.value)


def test_the_lock_is_released_when_the_holder_is_done(tmp_path: Path) -> None:
    with locked_data_dir(tmp_path):
        pass
    with locked_data_dir(tmp_path):  # no stale lock: the flock went with the file's close
        pass
