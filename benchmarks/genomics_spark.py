"""The genomics bronze ingest of a generated cohort's deliveries: parsed in this machine's worker
processes (1 and 2) against parsed by a Spark job through Dagster Pipes (`local[2]`), each into
a fresh lakehouse, the best of `--repeats` runs each.

Usage: python benchmarks/genomics_spark.py [--patients 1000] [--repeats 2]

Spark's figure includes starting its JVM (~5-8 s here) and the Pipes round trip; on one 2-core
machine it cannot beat the local pool, it shows what the distribution costs. The gain comes on a
cluster master (MM_SPARK_MASTER), where executors are other machines.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from measure import isolated  # noqa: E402


def ingest(data: str, engine: str, workers: int) -> tuple[float, int, int]:
    import dagster as dg

    os.environ.update(
        {
            "MM_DATA_DIR": data,
            "MM_PARSE_ENGINE": engine,
            "MM_INGEST_WORKERS": str(workers),
            "MM_SPARK_MASTER": "local[2]",
        }
    )
    from multimodal_assets.defs.deliveries import register_delivery_batches
    from multimodal_assets.defs.genomics import genomics_landing
    from multimodal_assets.defs.resources import LakehouseResource, PseudonymKey
    from multimodal_assets.lib.governance.pseudonym import pseudonym_key

    lakehouse = tempfile.mkdtemp(prefix="lakehouse-", dir=data)
    instance = dg.DagsterInstance.ephemeral()
    started = time.perf_counter()
    result = dg.materialize(
        [genomics_landing],
        resources={
            "lakehouse": LakehouseResource(root=lakehouse),
            "pseudonym": PseudonymKey(secret=pseudonym_key().decode()),
        },
        instance=instance,
        tags=register_delivery_batches(instance),
    )
    elapsed = time.perf_counter() - started
    (event, *_) = result.get_asset_materialization_events()
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    return elapsed, meta["files_ingested"], meta["files_quarantined"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    from multimodal_assets.lib.synthetic.writer import generate

    data = tempfile.mkdtemp(prefix="genomics-spark-")
    generate(
        args.patients,
        5,
        Path(data) / "landing",
        progress=False,
        modalities=("clinical", "genomics"),
    )
    results = {}
    for label, engine, workers in (
        ("in-process, 1 worker", "in_process", 1),
        ("in-process, 2 workers", "in_process", 2),
        ("Spark local[2] via Pipes", "spark", 1),
    ):
        runs = [isolated(ingest, data, engine, workers) for _ in range(args.repeats)]
        results[label] = min(runs)
        seconds, ingested, quarantined = results[label]
        print(f"{label}: {seconds:.1f} s ({ingested} files ingested, {quarantined} quarantined)")
    base = results["in-process, 1 worker"][0]
    for label, (seconds, *_) in results.items():
        print(f"  ratio to 1 worker: {label} {seconds / base:.2f}")


if __name__ == "__main__":
    main()
