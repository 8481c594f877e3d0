"""Imaging assets: DICOM files → bronze instance headers (identified) → silver de-identified
instances and series (Annex E) → gold per-series pixel features and embeddings → per-patient
lesion features as of the index date."""

from collections import Counter
from datetime import timedelta

import dagster as dg

from multimodal_assets.lib import imaging
from multimodal_assets.lib.governance.pseudonym import date_shift_days
from multimodal_assets.lib.imaging import (
    DICOM_INSTANCES,
    FEATURES,
    INSTANCES,
    SERIES,
    SERIES_FEATURES,
)
from multimodal_assets.lib.imaging import deid as dicom_deid
from multimodal_assets.lib.platform import config, warehouse
from multimodal_assets.lib.platform.parallel import map_in_processes, map_query_in_chunks

from .governed import (
    asset_key,
    bronze_ingest_asset,
    governed_table_asset,
)

dicom_instances = bronze_ingest_asset(
    DICOM_INSTANCES, imaging.parse_dicom_file, kinds={"duckdb", "dicom"}
)


# Instances de-identified (and scanned) per chunk: the cohort's headers never sit in memory at
# once (194,000 instances at 10,000 patients).
INSTANCES_PER_CHUNK = 20_000


def _build_instances(conn, run_id: str, key: bytes) -> dict:
    key_by_mrn = dict(conn.execute("SELECT mrn, research_key FROM silver.patients").fetchall())
    counts = Counter()

    def chunks():
        for _, results in map_query_in_chunks(
            conn,
            "SELECT * EXCLUDE (received_at, _run_id) FROM bronze.dicom_instances "
            "ORDER BY sop_instance_uid",
            imaging.deidentified_instance,
            (key_by_mrn, key),
            config.pixel_workers(),
            INSTANCES_PER_CHUNK,
        ):
            # An instance whose header cannot be de-identified stays in bronze and is counted.
            rows = [{**row, "_run_id": run_id} for row in results if row is not None]
            counts["instances"] += len(rows)
            counts["instances_not_deidentified"] += len(results) - len(rows)
            counts["linked_to_patient"] += sum(r["linked_to_patient"] for r in rows)
            yield rows

    warehouse.stage_row_batches(conn, INSTANCES, chunks())
    return {
        "instances": counts["instances"],
        "instances_not_deidentified": counts["instances_not_deidentified"],
        "linked_to_patient": counts["linked_to_patient"],
        "deidentification": dicom_deid.METHOD,
    }


def _no_phi_left(conn, staged: str) -> dg.AssetCheckResult:
    """Scan every element of every staged de-identified instance against the Annex E table and
    against the identifying values of its source header."""
    scanned, dirty, kinds = 0, 0, Counter()
    for _, problems in map_query_in_chunks(
        conn,
        f"SELECT b.header, s.deidentified_header::VARCHAR AS deidentified FROM {staged} s "
        "JOIN bronze.dicom_instances b USING (_source_sha256)",
        dicom_deid.phi_left_in,
        (),
        config.pixel_workers(),
        INSTANCES_PER_CHUNK,
    ):
        # A header the scan cannot read is not known to be clean: it counts as dirty.
        found = [p if p is not None else ["scan failed: unreadable"] for p in problems]
        found = [p for p in found if p]
        scanned += len(problems)
        dirty += len(found)
        # Tags and counts only: the problem texts never quote a value.
        kinds.update(problem.split(": ", 1)[-1] for each in found for problem in each)
    return dg.AssetCheckResult(
        asset_key=asset_key(INSTANCES),
        check_name="no_phi_left",
        passed=not dirty,
        metadata={
            "instances_scanned": scanned,
            "instances_with_problems": dirty,
            **{f"problem: {k}": v for k, v in kinds.most_common(10)},
        },
    )


instances = governed_table_asset(
    INSTANCES,
    build=_build_instances,
    pseudonymizes=True,
    kinds={"duckdb", "dicom"},
    gates=[
        (
            dg.AssetCheckSpec(
                "no_phi_left",
                asset=asset_key(INSTANCES),
                blocking=True,
                description="No private tag, curve/overlay group or Annex E 'remove' tag in any "
                "de-identified instance, and none of its source header's identifying values.",
            ),
            _no_phi_left,
        )
    ],
)

series = governed_table_asset(
    SERIES,
    kinds={"duckdb", "sql"},
)


def _build_series_features(conn, run_id: str, key: bytes) -> dict:
    landing = config.landing_dir()
    todo = conn.execute(imaging.SERIES_FILES_SQL).fetchall()
    work = [
        ([{**f, "path": str(landing / f["path"])} for f in files], (dz, dy, dx))
        for *_, dz, dy, dx, files in todo
    ]
    features = map_in_processes(imaging.series_features, work, config.pixel_workers())
    rows = []
    for (series_uid, research_key, modality, shifted, *_), found in zip(
        todo, features, strict=True
    ):
        rows.append(
            {
                "research_key": research_key,
                "series_uid": series_uid,
                "modality": modality,
                # Silver keeps only the shifted date; point-in-time joins need the true one.
                "acquired_on": (
                    shifted - timedelta(days=date_shift_days(research_key, key))
                    if shifted and research_key
                    else None
                ),
                **found,
                "_run_id": run_id,
            }
        )
    warehouse.stage_rows(conn, SERIES_FEATURES, rows)
    statuses = Counter(r["pixel_status"] for r in rows)
    return {"series": len(rows), **{f"pixel_status: {k}": v for k, v in statuses.items()}}


def _embeddings_complete(conn) -> dg.AssetCheckResult:
    """Every series with decoded pixels has one unit-length embedding of the declared size."""
    (missing, wrong) = conn.execute(
        "SELECT count(*) FILTER (WHERE instances_decoded > 0 AND embedding IS NULL), "
        "count(*) FILTER (WHERE embedding IS NOT NULL AND (array_length(embedding) <> "
        f"{imaging.EMBEDDING_DIM} OR abs(sqrt(array_inner_product(embedding, embedding)) - 1) "
        "> 1e-3)) FROM gold.imaging_series_features"
    ).fetchall()[0]
    (unfeatured,) = conn.execute(
        "SELECT count(*) FROM silver.imaging_series WHERE has_pixel_data AND series_uid NOT IN "
        "(SELECT series_uid FROM gold.imaging_series_features)"
    ).fetchall()[0]
    return dg.AssetCheckResult(
        asset_key=asset_key(SERIES_FEATURES),
        check_name="one_embedding_per_series",
        passed=missing == 0 and wrong == 0 and unfeatured == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "decoded_without_embedding": missing,
            "embedding_wrong_size_or_norm": wrong,
            "series_with_pixels_but_no_row": unfeatured,
        },
    )


series_features = governed_table_asset(
    SERIES_FEATURES,
    build=_build_series_features,
    pseudonymizes=True,
    kinds={"duckdb", "python"},
    # The registry names the landed files whose pixels are decoded.
    reads=[DICOM_INSTANCES],
    monitors=[
        (
            dg.AssetCheckSpec(
                "one_embedding_per_series",
                asset=asset_key(SERIES_FEATURES),
                description=f"One unit-length {imaging.EMBEDDING_DIM}-number embedding for "
                "every series whose pixels decoded.",
            ),
            _embeddings_complete,
        ),
    ],
)

imaging_features = governed_table_asset(FEATURES, kinds={"duckdb", "sql"})

assets = [dicom_instances, instances, series, series_features, imaging_features]
