"""End to end through the real CLI (multiprocess executor), as a user or CI would run it."""

import os
import subprocess
import sys
from pathlib import Path

from assets_tests.conftest import materialize
from multimodal_assets.lib import warehouse
from multimodal_assets.lib.synthetic.writer import generate

DAGSTER = Path(sys.executable).with_name("dagster")


def _materialize_all(data: Path) -> subprocess.CompletedProcess:
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [
            str(DAGSTER),
            "asset",
            "materialize",
            "-m",
            "multimodal_assets.definitions",
            "--select",
            "*",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_materializes_the_whole_graph_with_parallel_steps(tmp_path):
    generate(8, 2, tmp_path / "landing", progress=False)
    done = _materialize_all(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not set lock" not in done.stderr
    with warehouse.connect(tmp_path / "warehouse" / "lakehouse.duckdb") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (8,)


def test_graph_materializes_when_a_modality_has_no_files(data_dir):
    # In-process: the CLI path is covered above, and each CLI run costs ~40 s of process spawns.
    assert materialize(data_dir).success
    with warehouse.connect(data_dir / "warehouse" / "lakehouse.duckdb") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM bronze.files").fetchone() == (0,)
