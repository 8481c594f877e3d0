"""Imaging throughput: DICOM header ingest against a bare pydicom loop, de-identification, pixel
features with 1 and 2 worker processes, and exact similarity search.

Usage: python benchmarks/imaging_ingest.py [--patients 200] [--slices 16] [--matrix 128]
Generates the synthetic CT series of `--patients` patients (about 20 files each at the
defaults), reads every file once so all timings start from the page cache, then times in the
same run, each measurement in its own process (its own peak memory):
  - the baseline: `pydicom.dcmread(path, stop_before_pixels=True)` over every file;
  - our bronze ingest (parse, header bytes, provenance, registry, DuckDB append; file hashing
    is reported separately);
  - silver de-identification (Annex E on every element, DICOM JSON out);
  - gold pixel features (decode, HU, lesion segmentation, embedding) with 1 and 2 processes;
  - an exact top-10 cosine search over 100,000 embeddings in DuckDB.
"""

import argparse
import tempfile
import time
from pathlib import Path

from measure import isolated, peak_mib


def _generate(landing: Path, patients: int, slices: int, matrix: int) -> int:
    from multimodal_assets.lib.synthetic.cohort import draw_cohort
    from multimodal_assets.lib.synthetic.imaging import render_imaging

    deliveries, _ = render_imaging(draw_cohort(patients, 3), 3, landing, slices, matrix)
    return len(deliveries)


def _bare_loop(paths: list[str]) -> tuple[float, float]:
    import warnings

    import pydicom

    warnings.simplefilter("ignore")
    start = time.perf_counter()
    for path in paths:
        try:
            pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001, S112 - the noise file is part of the set
            continue
    return time.perf_counter() - start, peak_mib()


def _ours(root: Path) -> tuple[float, float, int, float]:
    from multimodal_assets.lib import imaging
    from multimodal_assets.lib.platform import ingest, warehouse

    start = time.perf_counter()
    files = [f.hashed() for f in ingest.scan_landing(root, "imaging")]
    hashing = time.perf_counter() - start
    with warehouse.connect(root.parent / "lakehouse") as conn:
        start = time.perf_counter()
        summary = ingest.ingest(
            conn, "imaging", files, imaging.parse_dicom_file, imaging.DICOM_INSTANCES, "benchmark"
        )
        seconds = time.perf_counter() - start
        export = root.parent / "bronze_export"
        export.mkdir(exist_ok=True)
        conn.execute(
            f"COPY bronze.dicom_instances TO '{export / 'bronze_dicom_instances.parquet'}' "
            "(FORMAT parquet)"
        )
    return seconds, hashing, summary.ingested, peak_mib()


def _deidentify(root: Path) -> tuple[float, int, float]:
    import duckdb

    from multimodal_assets.defs.imaging import _deidentify_batch

    rows = (
        duckdb.connect()
        .sql(
            f"SELECT * EXCLUDE (received_at, _run_id) FROM "
            f"'{root.parent / 'bronze_export'}/bronze_dicom_instances.parquet'"
        )
        .to_arrow_table()
        .to_pylist()
    )
    start = time.perf_counter()
    _deidentify_batch(rows, {}, b"benchmark-key")
    return time.perf_counter() - start, len(rows), peak_mib()


def _pixel_features(series: list[list[str]], workers: int, voxel) -> tuple[float, float]:
    from multimodal_assets.lib.imaging import series_features
    from multimodal_assets.lib.platform.parallel import map_in_processes

    start = time.perf_counter()
    map_in_processes(series_features, [(paths, voxel) for paths in series], workers)
    return time.perf_counter() - start, peak_mib()


def _search(n: int) -> tuple[float, float]:
    import duckdb
    import numpy as np

    vectors = np.random.default_rng(0).random((n, 32), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    conn = duckdb.connect()
    import pyarrow as pa

    table = pa.table(
        {
            "id": np.arange(n),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 32),
        }
    )
    conn.register("v", table)
    conn.execute("CREATE TABLE e AS SELECT id, embedding::FLOAT[32] AS embedding FROM v")
    probe = vectors[0].tolist()
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        conn.execute(
            "SELECT id, array_cosine_distance(embedding, $p::FLOAT[32]) AS d FROM e "
            "ORDER BY d LIMIT 10",
            {"p": probe},
        ).fetchall()
        timings.append(time.perf_counter() - start)
    return float(np.median(timings)), peak_mib()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--matrix", type=int, default=128)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mm-imaging-bench-"))
    landing = folder / "landing" / "imaging"
    start = time.perf_counter()
    n_files = isolated(_generate, landing, args.patients, args.slices, args.matrix)
    paths = sorted(str(p) for p in landing.rglob("*") if p.is_file())
    size = sum(Path(p).stat().st_size for p in paths)
    for path in paths:  # warm the page cache: every timing below reads from memory
        Path(path).read_bytes()
    print(
        f"generated {n_files:,} files ({size / 1e6:.0f} MB, {args.slices} slices of "
        f"{args.matrix}x{args.matrix} per series) in {time.perf_counter() - start:.1f} s"
    )

    bare, bare_peak = isolated(_bare_loop, paths)
    ours, hashing, ingested, ours_peak = isolated(_ours, folder / "landing")
    deid, instances, deid_peak = isolated(_deidentify, folder / "landing")
    series: dict[str, list[str]] = {}
    for path in paths:
        series.setdefault(str(Path(path).parent), []).append(path)
    groups = [g for g in series.values() if len(g) > 1]
    spacing = 360.0 / args.matrix
    one, one_peak = isolated(_pixel_features, groups, 1, (5.0, spacing, spacing))
    two, two_peak = isolated(_pixel_features, groups, 2, (5.0, spacing, spacing))
    search, search_peak = isolated(_search, 100_000)
    n = len(paths)
    pixel_files = sum(len(g) for g in groups)
    print(
        f"bare dcmread(stop_before_pixels) loop  {n / bare:8.0f} files/s   (peak {bare_peak:.0f} MiB)"
    )
    print(
        f"ours: bronze header ingest            {n / ours:8.0f} files/s   "
        f"{bare / ours:.0%} of the bare loop; {ingested:,} ingested (peak {ours_peak:.0f} MiB)"
    )
    print(f"      + SHA-256 of every file         {n / (ours + hashing):8.0f} files/s")
    print(
        f"ours: silver de-identification        {instances / deid:8.0f} instances/s "
        f"(peak {deid_peak:.0f} MiB)"
    )
    print(
        f"ours: pixel features, 1 process       {pixel_files / one:8.0f} files/s  "
        f"{len(groups) / one:6.1f} series/s (peak {one_peak:.0f} MiB)"
    )
    print(
        f"ours: pixel features, 2 processes     {pixel_files / two:8.0f} files/s  "
        f"{len(groups) / two:6.1f} series/s  {one / two:.2f}x one process (peak {two_peak:.0f} MiB)"
    )
    print(
        f"exact top-10 cosine search, 100,000 embeddings: {search * 1000:.0f} ms "
        f"(peak {search_peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
