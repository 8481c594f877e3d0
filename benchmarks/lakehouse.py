"""Lakehouse storage: readers during a run, sensor and ingest overhead, files per table.

Usage:
  python benchmarks/lakehouse.py sensor [--files 2500 250000]
  python benchmarks/lakehouse.py gateway [--patients 2000] [--queries 50] [--every 2]
  python benchmarks/lakehouse.py files [--runs 20]

`sensor`: a landing of N registered files (29 KiB each, the default cohort's mean) plus 10 new; a landing sensor tick and an ingest
run's overhead (list, registry diff, hash of the new files, the registry commit), next to hashing
every landed file as the first round's sensor and ingest did, in the same run (best of 3).
`gateway`: governed query latency p50/p95 with nothing running, then every `--every` seconds while
the main job materializes a cohort of `--patients` in another process.
`files`: active and on-disk Parquet files per table after `--runs` incremental wearables runs,
before and after lakehouse maintenance.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def sensor(counts: list[int], file_kib: int) -> None:
    for count in counts:
        _sensor_at(count, file_kib)


def _sensor_at(count: int, file_kib: int) -> None:
    from multimodal_assets.lib import notes
    from multimodal_assets.lib.platform import ingest, landing_watch, warehouse

    data = Path(tempfile.mkdtemp(prefix="mm-sensor-bench-"))
    root, landing = str(data / "lakehouse"), data / "landing"
    folder = landing / "notes"
    rows = []
    for i in range(count):
        path = folder / f"batch-{i // 1000:04d}" / f"note-{i:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"note {i}\n".encode().ljust(file_kib * 1024, b"."))
        rows.append(
            {
                "path": path.relative_to(landing).as_posix(),
                "sha256": f"{i:064x}",
                "bytes": path.stat().st_size,
                "received_at": ingest.modified_at(path.stat()),
                "modality": "notes",
                "status": "ingested",
                "records": 1,
            }
        )
    warehouse.append_rows(root, ingest.FILES, rows)
    for i in range(10):
        (folder / "new" / f"n{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (folder / "new" / f"n{i}.txt").write_text(f"new {i}\n")

    def tick():
        registered = {
            p.split("/", 1)[1]: known for p, known in ingest.registered_paths(root, "notes").items()
        }
        found = landing_watch.new_files(folder, None, registered)
        assert len(found.paths) == 10

    def ingest_overhead() -> float:
        # On a copy, so every repeat finds the same 10 new files; the copy is not timed.
        scratch = Path(tempfile.mkdtemp(prefix="mm-ingest-bench-"))
        shutil.copytree(root, scratch / "lakehouse")
        started = time.perf_counter()
        with warehouse.connect(scratch / "lakehouse") as conn:
            # As the ingest asset does: registered paths left out of the scan, then the ingest.
            registered = ingest.registered_paths(conn.root, "notes")
            files = ingest.scan_landing(landing, "notes", registered=registered)
            summary = ingest.ingest(conn, "notes", files, lambda d: [], notes.NOTE_TEXTS, "b")
        seconds = time.perf_counter() - started
        assert summary.new_files == 10
        shutil.rmtree(scratch)
        return seconds

    def hash_everything():
        for _, entry in ingest.visible_files(folder):
            ingest.sha256_file(entry.path)

    tick_s, hash_s = _best(tick), _best(hash_everything)
    ingest_s = min(ingest_overhead() for _ in range(3))
    print(
        f"{count:>8,} landed files + 10 new: sensor tick {tick_s * 1000:8.1f} ms, "
        f"ingest-run overhead {ingest_s * 1000:8.1f} ms; hashing every file (first round) "
        f"{hash_s * 1000:8.1f} ms"
    )
    shutil.rmtree(data)


def _main_job(data: Path, patients: int) -> subprocess.Popen:
    env = {**os.environ, "MM_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")}
    return subprocess.Popen(
        [sys.executable, "-m", "multimodal_assets.cli.run", "--patients", str(patients)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _query(root: str) -> float:
    from multimodal_assets.lib.governance.gateway import run_query

    started = time.perf_counter()
    run_query(
        "SELECT status, count(*) FROM bronze.files GROUP BY 1",
        user="carol",
        role="data_engineer",
        root=root,
    )
    return time.perf_counter() - started


def _percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * len(ordered))) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms"


def gateway(patients: int, queries: int, every: float) -> None:
    from multimodal_assets.lib.governance.policy import Denied

    data = Path(tempfile.mkdtemp(prefix="mm-gateway-bench-"))
    root = str(data / "lakehouse")
    run = _main_job(data, patients)
    while not (data / "lakehouse" / "bronze" / "files" / "_delta_log").exists():
        assert run.poll() is None, "the main job ended before registering a file"
        time.sleep(0.5)
    busy, refused = [], 0
    for _ in range(queries):
        started = time.perf_counter()
        try:
            busy.append(_query(root))
        except Denied:
            refused += 1
        time.sleep(max(0.0, every - (time.perf_counter() - started)))
    still_running = run.poll() is None
    run.wait()
    idle = [_query(root) for _ in range(queries)]
    print(f"cohort {patients} patients; {queries} governed queries each")
    print(f"idle                         {_percentiles(idle)}")
    print(
        f"during the main job          {_percentiles(busy)}  "
        f"({len(busy)} answered, {refused} refused; main job still running at the last: "
        f"{still_running})"
    )
    shutil.rmtree(data)


def files(runs: int) -> None:
    import json

    import dagster as dg

    data = Path(tempfile.mkdtemp(prefix="mm-files-bench-"))
    os.environ["MM_DATA_DIR"] = str(data)
    from multimodal_assets.definitions import defs
    from multimodal_assets.lib.platform import config, lakehouse
    from multimodal_assets.lib.synthetic.writer import generate

    generate(20, 3, data / "landing", progress=False)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    from multimodal_assets.defs.deliveries import register_delivery_batches

    job.execute_in_process(
        instance=instance, tags=register_delivery_batches(instance), raise_on_error=False
    )
    wearables = [
        k for k in defs.resolve_asset_graph().get_all_asset_keys() if k.path[0] == "wearables"
    ]
    import pandas as pd

    truth = pd.read_parquet(config.truth_dir() / "wearable_events.parquet")
    sample = truth[truth.event_type == "steps"].iloc[200]
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    for run in range(runs):
        # A late event of a real wearer (the one the late-event test uses), 3 days after it
        # happened: bronze appends it, silver rewrites its day, gold that day and the 27 after.
        late = config.landing_dir("wearables") / f"late-{run:02d}" / "export.jsonl"
        late.parent.mkdir(parents=True)
        start = sample.event_time + pd.Timedelta(minutes=30 + run)
        event = {
            "device": sample.device_id,
            "id": f"late-{run}",
            "type": "steps",
            "ts": start.isoformat() + "Z",
            "end": (start + pd.Timedelta(minutes=1)).isoformat() + "Z",
            "count": 100 + run,
        }
        late.write_text(json.dumps(event) + "\n")
        arrival = (pd.Timestamp(sample.event_time.date()) + pd.Timedelta(days=3)).timestamp()
        os.utime(late, (arrival, arrival))
        dg.materialize(
            list(defs.assets),
            instance=instance,
            selection=wearables,
            resources=defs.resources,
            run_config=quiet,
        )
    root = config.lakehouse_root()

    def counts():
        out = {}
        for fqn in lakehouse.list_tables(root):
            snap = lakehouse.snapshot(root, fqn)
            on_disk = len(list(Path(lakehouse.table_uri(root, fqn)).glob("*.parquet")))
            out[fqn] = (len(snap.files), on_disk, snap.version)
        return out

    before = counts()
    for fqn in before:
        lakehouse.maintain(root, fqn)
    after = counts()
    print(f"after {runs} incremental wearables runs (active files / files on disk, version)")
    for fqn in sorted(before):
        if fqn.startswith(
            (
                "bronze.files",
                "bronze.wearable",
                "silver.wearable",
                "gold.wearable",
                "audit.",
                "bronze.quarantine",
            )
        ):
            print(
                f"  {fqn:<30} before {before[fqn][0]:>4} / {before[fqn][1]:>4} (v{before[fqn][2]})"
                f"   after maintenance {after[fqn][0]:>4} / {after[fqn][1]:>4}"
            )
    print(
        f"  largest active file count: before {max(v[0] for v in before.values())}, "
        f"after {max(v[0] for v in after.values())}"
    )
    shutil.rmtree(data)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["sensor", "gateway", "files"])
    parser.add_argument("--files", type=int, nargs="+", default=[2_500, 250_000])
    # The default cohort's landing: 280 MB in 9,662 files.
    parser.add_argument("--file-kib", type=int, default=29, help="size of each landed file")
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--every", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if args.what == "sensor":
        sensor(args.files, args.file_kib)
    elif args.what == "gateway":
        gateway(args.patients, args.queries, args.every)
    else:
        files(args.runs)


if __name__ == "__main__":
    main()
