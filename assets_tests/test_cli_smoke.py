"""End to end through the real CLI (multiprocess executor), as a user or CI would run it."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from assets_tests.conftest import materialize
from multimodal_assets.defs.deliveries import register_delivery_batches
from multimodal_assets.lib.platform import ingest, warehouse
from multimodal_assets.lib.synthetic.writer import generate

DAGSTER = Path(sys.executable).with_name("dagster")


def _dagster_materialize(env: dict, selection: str, *partition: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(DAGSTER),
            "asset",
            "materialize",
            "-m",
            "multimodal_assets.definitions",
            "--select",
            selection,
            *partition,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _materialize_all(data: Path) -> list[subprocess.CompletedProcess]:
    """Every asset through the CLI: the bronze tables over every delivery in one run (a
    partition range needs every selected asset to run single-run), then the unpartitioned rest."""
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(home)}
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        tags = register_delivery_batches(instance)  # what the landing sensors do in a deployment
    deliveries = f"{tags[ASSET_PARTITION_RANGE_START_TAG]}...{tags[ASSET_PARTITION_RANGE_END_TAG]}"
    bronze = _dagster_materialize(env, 'key:"bronze/*"', "--partition-range", deliveries)
    if bronze.returncode != 0:
        return [bronze]
    rest = _dagster_materialize(env, 'not key:"bronze/*"')
    return [bronze, rest]


@pytest.mark.slow
def test_cli_materializes_the_whole_graph_with_parallel_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    generate(8, 2, tmp_path / "landing", progress=False)
    for done in _materialize_all(tmp_path):
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Could not set lock" not in done.stderr
    with warehouse.connect(tmp_path / "lakehouse") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (8,)
        genomics_batches = conn.execute(
            "SELECT DISTINCT split_part(path, '/', 2) FROM bronze.files WHERE modality = 'genomics'"
        ).fetchall()
    landed = set(ingest.landed_batches(tmp_path / "landing", "genomics"))
    assert {batch for (batch,) in genomics_batches} == landed


@pytest.mark.slow  # the whole graph, on an empty modality
def test_graph_materializes_when_a_modality_has_no_files(data_dir):
    # In-process: the CLI path is covered above, and each CLI run costs ~40 s of process spawns.
    assert materialize(data_dir).success
    with warehouse.connect(data_dir / "lakehouse") as conn:
        assert conn.execute("SELECT count(*) FROM gold.clinical_features").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM bronze.files").fetchone() == (0,)
