"""End to end through the real CLI (multiprocess executor), as a user or CI would run it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from assets_tests.conftest import materialize
from multimodal_assets.defs.deliveries import register_delivery_batches
from multimodal_assets.lib.platform import ingest, warehouse
from multimodal_assets.lib.synthetic.writer import generate

DAGSTER = Path(sys.executable).with_name("dagster")


def _materialize_all(data: Path, genomics_batch: str) -> subprocess.CompletedProcess:
    """Every asset but the per-meeting packets through the CLI; the genomics bronze tables take
    one delivery batch (the CLI runs a partition range in one run only when every selected asset
    has a single-run policy)."""
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        register_delivery_batches(instance)  # what the landing sensor does in a deployment
    return subprocess.run(
        [
            str(DAGSTER),
            "asset",
            "materialize",
            "-m",
            "multimodal_assets.definitions",
            "--select",
            # The tumor-board packets are partitioned by meeting, not by delivery batch.
            'not key:"oncology/tumor_board_packets"',
            "--partition",
            genomics_batch,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_materializes_the_whole_graph_with_parallel_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    generate(8, 2, tmp_path / "landing", progress=False)
    first_batch = ingest.landed_batches(tmp_path / "landing", "genomics")[0]
    done = _materialize_all(tmp_path, first_batch)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not set lock" not in done.stderr
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (8,)
        genomics_files = conn.execute(
            "SELECT path FROM bronze.files WHERE modality = 'genomics'"
        ).fetchall()
    assert genomics_files
    assert {path.split("/")[1] for (path,) in genomics_files} == {first_batch}


@pytest.mark.slow  # the whole graph, on an empty modality
def test_graph_materializes_when_a_modality_has_no_files(data_dir):
    # In-process: the CLI path is covered above, and each CLI run costs ~40 s of process spawns.
    assert materialize(data_dir).success
    with warehouse.connect(data_dir / "lakehouse") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM bronze.files").fetchone() == (0,)
