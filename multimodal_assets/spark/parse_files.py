"""Parse landed files on Spark with the product's own parsers, launched by Dagster Pipes.

`python -m multimodal_assets.spark.parse_files` (or spark-submit of this file) reads from the
Pipes context's extras: `files` ([path, sha256] pairs), `parser` ("module:function", e.g.
`multimodal_assets.lib.genomics:parse_genomics_file`), `staging` (a folder every executor can
write, such as object storage on a cluster) and `master` (`local[*]`, a cluster URL). Each
executor parses its files with `parse_to_parquet`, the same function the in-process ingest's
worker processes run, so each file's rows are staged as Parquet exactly as there; the driver
writes `<staging>/outcomes.json` (sha256 → staged outcome) and reports counts to Dagster. The
commit into the Delta tables stays one step in the Dagster process (`ParsedElsewhere`): the
Delta Lake jars for Spark cannot be fetched here, and one writer keeps the registry's
exactly-once commit as it is.
"""

import importlib
import json
import os
import sys
import time
from pathlib import Path


def _parse_partition(batches, parser: str, staging: str):
    import pyarrow as pa

    from multimodal_assets.lib.platform.ingest.isolation import parse_to_parquet, staged_to_json

    module, name = parser.split(":")
    parse = getattr(importlib.import_module(module), name)
    for batch in batches:
        out = {"sha256": [], "outcome": []}
        for path, sha in zip(
            batch.column("path").to_pylist(), batch.column("sha256").to_pylist(), strict=True
        ):
            if sha in out["sha256"]:
                continue
            staged = parse_to_parquet(parse, True, Path(path), Path(staging), sha)
            out["sha256"].append(sha)
            out["outcome"].append(json.dumps(staged_to_json(staged)))
        yield pa.RecordBatch.from_pydict(out)


def main() -> None:
    from dagster_pipes import open_dagster_pipes

    # Executors run the driver's interpreter, which has the project installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with open_dagster_pipes() as pipes:
        from pyspark.sql import SparkSession

        files = pipes.get_extra("files")
        parser, staging = pipes.get_extra("parser"), pipes.get_extra("staging")
        started = time.perf_counter()
        spark = (
            SparkSession.builder.master(pipes.get_extra("master"))
            .appName("multimodal-assets-parse")
            .config("spark.ui.enabled", "false")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .getOrCreate()
        )
        try:
            frame = spark.createDataFrame(files, "path string, sha256 string")
            partitions = max(1, min(len(files), spark.sparkContext.defaultParallelism * 4))
            rows = (
                frame.repartition(partitions)
                .mapInArrow(
                    lambda b: _parse_partition(b, parser, staging), "sha256 string, outcome string"
                )
                .collect()
            )
        finally:
            spark.stop()
        outcomes = {r.sha256: json.loads(r.outcome) for r in rows}
        Path(staging, "outcomes.json").write_text(json.dumps(outcomes))
        quarantined = sum("quarantine" in o for o in outcomes.values())
        pipes.log.info(f"parsed {len(outcomes)} files on Spark, {quarantined} refused")
        pipes.report_custom_message(
            {
                "files_parsed_on_spark": len(outcomes),
                "files_refused_on_spark": quarantined,
                "spark_partitions": partitions,
                "spark_seconds": round(time.perf_counter() - started, 1),
            }
        )


if __name__ == "__main__":
    main()
