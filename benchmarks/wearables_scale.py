"""Wearables at scale: bronze ingest and daily aggregation of N events (default 50 million).

Usage: python benchmarks/wearables_scale.py [--events 50000000] [--workdir DIR]

Each stage runs in its own process so that its peak memory is its own:
  1. generate   vendor v2 JSONL exports with DuckDB (not timed as ours)
  2. ingest     our bronze ingest (Arrow JSON reader + DuckDB mapping + exactly-once insert)
  3. silver     bronze → silver events (device link, lateness filter) published by day slices
  4. aggregate  our daily features SQL (with rolling windows) published by day slices, next to
                a bare DuckDB GROUP BY of the same per-day aggregates over the same events in
                Parquet
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from measure import peak_mib

DEVICES = 2000
EVENTS_PER_FILE = 1_000_000


def generate(work: Path, events: int) -> dict:
    import duckdb

    landing = work / "landing" / "wearables"
    landing.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect()
    started = time.perf_counter()
    for index, first in enumerate(range(0, events, EVENTS_PER_FILE)):
        count = min(EVENTS_PER_FILE, events - first)
        # Hourly heart rate and steps, round-robin over devices, over about two months.
        conn.execute(f"""
            COPY (
              SELECT 2 AS schema_version, 'WD-' || lpad(CAST(i % {DEVICES} AS VARCHAR), 6, '0')
                       AS device_id,
                     'e' || CAST(i AS VARCHAR) AS event_id,
                     strftime(TIMESTAMP '2024-01-01' + to_hours(CAST(i // {2 * DEVICES} AS BIGINT)),
                              '%Y-%m-%dT%H:%M:%SZ') AS "timestamp",
                     CASE WHEN i % 2 = 0 THEN 'heart_rate' ELSE 'steps' END AS kind,
                     CASE WHEN i % 2 = 0 THEN 60 + i % 40 ELSE i % 900 END AS value,
                     CASE WHEN i % 2 = 0 THEN 'count/min' ELSE 'count' END AS unit,
                     50 + i % 50 AS battery_pct
              FROM range({first}, {first + count}) t(i)
            ) TO '{landing}/export-{index:04d}.jsonl' (FORMAT JSON)
        """)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in landing.glob("*.jsonl"))
    return {"events": events, "files": index + 1, "bytes": size, "seconds": seconds}


def ingest(work: Path) -> dict:
    os.environ["MM_DATA_DIR"] = str(work)
    from multimodal_assets.lib import wearables
    from multimodal_assets.lib.platform import config, warehouse
    from multimodal_assets.lib.platform import ingest as bronze

    files = bronze.scan_landing(config.landing_dir(), "wearables")
    started = time.perf_counter()
    with warehouse.connect(config.lakehouse_root()) as conn:
        summary = bronze.ingest(
            conn,
            "wearables",
            files,
            wearables.parse_wearables_file,
            wearables.WEARABLE_EVENTS,
            "bench",
        )
    seconds = time.perf_counter() - started
    return {
        "events": summary.records,
        "seconds": seconds,
        "events_per_s": summary.records / seconds,
        "peak_mib": peak_mib(),
    }


def silver(work: Path) -> dict:
    os.environ["MM_DATA_DIR"] = str(work)
    from multimodal_assets.lib import wearables
    from multimodal_assets.lib.governance import catalog
    from multimodal_assets.lib.platform import config, warehouse

    with warehouse.connect(config.lakehouse_root()) as conn:
        # Every bench device worn by one patient for the whole period.
        device_use = catalog.table("silver.device_use")
        staged = warehouse.stage(
            conn,
            device_use,
            "SELECT DISTINCT device_id, 'rk_' || device_id AS research_key, "
            "TIMESTAMP '2023-12-01' AS period_start, TIMESTAMP '2030-01-01' AS period_end, "
            "'active' AS status, 'bench' AS _source_sha256, device_id AS _source_locator, "
            "'bench' AS _run_id FROM bronze.wearable_events",
        )
        warehouse.publish(conn, device_use, staged)
        # The bench events arrive "on time": received right after they happened.
        staged = warehouse.stage(
            conn,
            wearables.WEARABLE_EVENTS,
            "SELECT * REPLACE (event_time + INTERVAL 1 HOUR AS received_at) "
            "FROM bronze.wearable_events",
        )
        warehouse.publish(conn, wearables.WEARABLE_EVENTS, staged)
        started = time.perf_counter()
        staged = warehouse.stage(
            conn, wearables.EVENTS, wearables.EVENTS.build_sql, {"run_id": "b"}
        )
        staged_s = time.perf_counter() - started
        slices = warehouse.publish_changed_slices(conn, wearables.EVENTS, staged)
        seconds = time.perf_counter() - started
        events = warehouse.row_count(conn, wearables.EVENTS.fqn)
    return {
        "events": events,
        "stage_s": staged_s,
        "stage_and_publish_s": seconds,
        "events_per_s": events / seconds,
        "day_slices": slices,
        "peak_mib": peak_mib(),
    }


def aggregate(work: Path) -> dict:
    os.environ["MM_DATA_DIR"] = str(work)
    from multimodal_assets.lib import wearables
    from multimodal_assets.lib.platform import config, lakehouse, warehouse

    # The Parquet files of the silver Delta table, read bare: the same data our SQL reads.
    files = list(lakehouse.snapshot(config.lakehouse_root(), wearables.EVENTS.fqn).files)
    parquet = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    # The same per-day aggregates as ours, without rolling windows, staging or publish.
    bare_sql = f"""CREATE OR REPLACE TEMP TABLE bare_daily AS
        SELECT research_key, event_date,
               quantile_cont(value, 0.1) FILTER (event_type = 'heart_rate') AS resting_hr,
               count(*) FILTER (event_type = 'heart_rate') AS hr_readings,
               sum(value) FILTER (event_type = 'steps') AS steps,
               sum(date_diff('minute', event_time, end_time)) FILTER (event_type = 'steps'
                   AND value >= 40 * date_diff('minute', event_time, end_time)) AS active,
               sum(value) FILTER (event_type = 'sleep') AS sleep
        FROM read_parquet({parquet}) GROUP BY ALL"""
    # DuckDB takes up to 80% of RAM by default; BENCH_DUCKDB_MEMORY_LIMIT caps it (at 1GB the
    # holistic quantile makes the daily aggregation ~1.5x slower; at 700MB it runs out).
    limit = os.environ.get("BENCH_DUCKDB_MEMORY_LIMIT")
    with warehouse.connect(config.lakehouse_root()) as conn:
        if limit:
            conn.execute(f"SET memory_limit = '{limit}'")
        events = warehouse.row_count(conn, wearables.EVENTS.fqn)

        def ours():
            staged = warehouse.stage(
                conn, wearables.DAILY, wearables.DAILY.build_sql, {"run_id": "b"}
            )
            return warehouse.publish_changed_slices(conn, wearables.DAILY, staged)

        # Warm both paths once, then take the median of three runs each, interleaved.
        conn.execute(bare_sql)
        slices = ours()
        bare_times, our_times = [], []
        for _ in range(3):
            started = time.perf_counter()
            conn.execute(bare_sql)
            bare_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            ours()
            our_times.append(time.perf_counter() - started)
    bare, mine = sorted(bare_times)[1], sorted(our_times)[1]
    return {
        "events": events,
        "bare_group_by_s": bare,
        "bare_events_per_s": events / bare,
        "ours_daily_s": mine,
        "ours_events_per_s": events / mine,
        "ratio_to_bare": bare / mine,
        "first_run_day_slices": slices,
        "duckdb_memory_limit": limit or "default",
        "peak_mib": peak_mib(),
    }


STAGES = {"generate": generate, "ingest": ingest, "silver": silver, "aggregate": aggregate}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mm-wearables-bench"))
    parser.add_argument("--stage", choices=list(STAGES))
    args = parser.parse_args()
    if args.stage:
        result = (
            generate(args.workdir, args.events)
            if args.stage == "generate"
            else STAGES[args.stage](args.workdir)
        )
        print(json.dumps(result))
        return
    if args.workdir.exists():
        import shutil

        shutil.rmtree(args.workdir)
    for stage in STAGES:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--stage",
                stage,
                "--events",
                str(args.events),
                "--workdir",
                str(args.workdir),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{stage:10s} "
            + ", ".join(
                f"{k}={v:,.2f}"
                if isinstance(v, float)
                else f"{k}={v:,}"
                if isinstance(v, int)
                else f"{k}={v}"
                for k, v in result.items()
            )
        )


if __name__ == "__main__":
    main()
