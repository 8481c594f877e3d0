"""Genomics parsing on Spark through Dagster Pipes gives the rows the in-process path gives."""

import shutil

import dagster as dg
import pytest

from multimodal_assets.defs.deliveries import register_delivery_batches
from multimodal_assets.defs.genomics import genomics_landing
from multimodal_assets.lib.genomics import BRONZE_TABLES
from multimodal_assets.lib.platform import ingest
from multimodal_assets.lib.synthetic.writer import generate

from .conftest import REAL_VCF, pipeline_resources, table_rows


def _ingest(data, lakehouse) -> dg.ExecuteInProcessResult:
    instance = dg.DagsterInstance.ephemeral()
    return dg.materialize(
        [genomics_landing],
        resources=pipeline_resources(lakehouse),
        instance=instance,
        tags=register_delivery_batches(instance),
    )


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("java") is None,
    reason="no Java for Spark (scripts/test.sh "
    "installs Debian's openjdk-17-jre-headless when it can run apt-get)",
)
def test_spark_parses_the_same_rows_and_refusals_as_the_in_process_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_DATA_DIR", str(tmp_path))
    generate(6, 3, tmp_path / "landing", progress=False, modalities=("clinical", "genomics"))
    shutil.copytree(
        REAL_VCF,
        tmp_path / "landing" / "genomics" / "realdata",
        ignore=shutil.ignore_patterns("NOTICE.md"),
    )
    local = _ingest(tmp_path, tmp_path / "in_process")
    monkeypatch.setenv("MM_PARSE_ENGINE", "spark")
    monkeypatch.setenv("MM_SPARK_MASTER", "local[2]")
    spark = _ingest(tmp_path, tmp_path / "spark")
    assert local.success and spark.success
    (event, *_) = spark.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["parse_engine"] == "spark (local[2])"
    assert meta["files_parsed_on_spark"] == meta["files_ingested"] + meta["files_quarantined"]
    assert meta["files_quarantined"] > 0  # the real files include ones that must be refused
    for table in (*(t.fqn for t in BRONZE_TABLES), ingest.FILES.fqn, ingest.QUARANTINE.fqn):
        in_process, on_spark = (
            table_rows(tmp_path / "in_process", table),
            table_rows(tmp_path / "spark", table),
        )
        assert in_process == on_spark, table
    assert table_rows(tmp_path / "spark", "bronze.variant_calls")  # and there were rows to compare
