"""Only the service account can open the data: another OS user cannot read a table file."""

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from multimodal_assets.lib.platform.permissions import create_private_file_once, make_private

RUNUSER = shutil.which("runuser")


def test_make_private_changes_the_folder_and_below_never_above(tmp_path):
    outer = tmp_path / "outer"
    data = outer / "data"
    (data / "lakehouse" / "gold").mkdir(parents=True)
    table = data / "lakehouse" / "gold" / "part-0.parquet"
    table.write_bytes(b"x")
    for path in (outer, data, data / "lakehouse", data / "lakehouse" / "gold"):
        path.chmod(0o755)
    table.chmod(0o644)
    assert make_private(data) == 4
    assert stat.S_IMODE(table.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "lakehouse").stat().st_mode) == 0o700
    assert stat.S_IMODE(outer.stat().st_mode) == 0o755  # above the folder: untouched
    assert make_private(data) == 0


def test_a_file_created_once_appears_whole_and_the_first_one_wins(tmp_path):
    path = tmp_path / "secrets" / "key"
    assert create_private_file_once(path, b"first") == b"first"
    assert create_private_file_once(path, b"second") == b"first"
    assert path.read_bytes() == b"first" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["key"]  # no draft left behind


def _as_nobody(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run([RUNUSER, "-u", "nobody", "--", *command], capture_output=True)


@pytest.mark.skipif(
    os.geteuid() != 0 or RUNUSER is None,
    reason="needs root and runuser to act as a second OS user (nobody)",
)
def test_another_os_user_cannot_open_a_table_file(warehouse_copy):
    # A world-traversable place, so that only the data's own modes can stop the other user.
    shared = Path(tempfile.mkdtemp(prefix="mm-permissions-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        lakehouse = shared / "lakehouse"
        shutil.copytree(warehouse_copy, lakehouse)
        for path in (lakehouse, *lakehouse.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        table = next((lakehouse / "silver" / "patients").glob("*.parquet"))
        assert _as_nobody("cat", str(table)).returncode == 0  # the test can tell
        make_private(lakehouse)
        refused = _as_nobody("cat", str(table))
        assert refused.returncode != 0 and b"Permission denied" in refused.stderr
        assert _as_nobody("ls", str(lakehouse)).returncode != 0
    finally:
        shutil.rmtree(shared)
