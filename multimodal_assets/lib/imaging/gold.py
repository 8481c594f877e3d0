"""Imaging gold: per-series pixel features and per-patient imaging features as of the index date."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, RuleCheck, Table
from .bronze import EMBEDDING_DIM
from .silver import _DEID_KEY, _new_uid_column


def _feature(name: str, description: str, **bounds) -> Column:
    return Column(name, "DOUBLE", description, "sensitive", **bounds)


_LESION_COLUMNS = (
    Column(
        "lesion_found", "BOOLEAN", "A lesion was segmented (NULL: not a CT volume).", "sensitive"
    ),
    _feature("lesion_volume_ml", "Lesion volume (ml).", min_value=0),
    _feature("lesion_diameter_mm", "Largest in-plane equivalent diameter (mm).", min_value=0),
    _feature(
        "lesion_extent_mm", "Cranio-caudal extent: slices with lesion × spacing (mm).", min_value=0
    ),
    _feature("lesion_mean_hu", "Mean lesion density (HU).", min_value=-300, max_value=300),
    _feature("lesion_sd_hu", "Lesion heterogeneity: SD of HU.", min_value=0),
    _feature(
        "lesion_contrast", "GLCM contrast (distance 1, horizontal) inside the lesion.", min_value=0
    ),
    _feature("lesion_entropy", "Entropy (bits) of the lesion's 16-bin HU histogram.", min_value=0),
)
# Pixels are read from the landed files behind the instances (bronze.files gives their path).
_FROM_SERIES_PIXELS = (("silver.imaging_instances", "_source_sha256"),)

SERIES_FEATURES = Table(
    layer="gold",
    name="imaging_series_features",
    modality="imaging",
    primary_key=("series_uid",),
    description="Per series: pixel-decoding outcome, intensity statistics, CT lesion size, "
    f"density and texture, and a {EMBEDDING_DIM}-number embedding for similarity search.",
    columns=(
        _DEID_KEY,
        _new_uid_column("series_uid", "Series Instance UID", nullable=False),
        Column("modality", "VARCHAR", "Modality.", "none"),
        Column(
            "acquired_on",
            "DATE",
            "Study date (the true date: point-in-time joins).",
            "phi",
            "hipaa",
        ),
        Column(
            "instances_decoded", "INTEGER", "Instances whose pixels decoded.", "none", min_value=0
        ),
        Column(
            "instances_failed", "INTEGER", "Instances whose pixels did not.", "none", min_value=0
        ),
        Column(
            "pixel_status",
            "VARCHAR",
            "ok, partial (some instances failed), not_decodable or no_pixels.",
            "none",
            nullable=False,
            allowed=("ok", "partial", "not_decodable", "no_pixels"),
        ),
        Column("pixel_error", "VARCHAR", "Why pixels did not decode (first failure).", "none"),
        Column("intensity_units", "VARCHAR", "HU for CT, modality units otherwise.", "none"),
        _feature("intensity_mean", "Mean voxel value."),
        _feature("intensity_sd", "SD of voxel values.", min_value=0),
        _feature("intensity_p05", "5th percentile voxel value."),
        _feature("intensity_p95", "95th percentile voxel value."),
        *_LESION_COLUMNS,
        Column(
            "embedding",
            f"FLOAT[{EMBEDDING_DIM}]",
            "Unit-length hand-made descriptor (lesion and whole-volume histograms, lesion "
            "measures); NULL without decoded pixels.",
            "sensitive",
        ),
        RUN_ID,
    ),
    lineage={
        "research_key": (("silver.imaging_series", "research_key"),),
        "series_uid": (("silver.imaging_series", "series_uid"),),
        "modality": (("silver.imaging_series", "modality"),),
        "acquired_on": (("silver.imaging_series", "study_date"),),
        **{
            c: _FROM_SERIES_PIXELS
            for c in (
                "instances_decoded",
                "instances_failed",
                "pixel_status",
                "pixel_error",
                "intensity_units",
                "intensity_mean",
                "intensity_sd",
                "intensity_p05",
                "intensity_p95",
                *(col.name for col in _LESION_COLUMNS),
                "embedding",
            )
        },
    },
    checks=(
        RuleCheck(
            "ct_intensities_in_hu_range",
            "CT voxel percentiles lie within the HU scale (-1024 … 3071, ±100 for rescale "
            "rounding): a wrong slope or intercept shows here.",
            "SELECT count(*) FROM gold.imaging_series_features WHERE intensity_units = 'HU' "
            "AND (intensity_p05 < -1124 OR intensity_p95 > 3171)",
        ),
    ),
)

# The files behind each series with pixel data, and the voxel size the features need.
SERIES_FILES_SQL = """
SELECT s.series_uid, s.research_key, s.modality, s.study_date,
       coalesce(s.slice_gap_mm, s.slice_thickness_mm, 1.0) AS dz,
       coalesce(s.pixel_spacing_mm[1], 1.0) AS dy, coalesce(s.pixel_spacing_mm[2], 1.0) AS dx,
       list({'path': f.path, 'sha256': f.sha256} ORDER BY i.slice_location_mm, i.instance_number)
           AS files
FROM silver.imaging_series s
JOIN silver.imaging_instances i USING (series_uid)
JOIN (SELECT sha256, min(path) AS path FROM bronze.files WHERE status = 'ingested'
      GROUP BY sha256) f ON f.sha256 = i._source_sha256
GROUP BY ALL
ORDER BY s.series_uid
"""


_LESION_NAMES = ", ".join(f"e.{c.name}" for c in _LESION_COLUMNS)
FEATURES_SQL = f"""
WITH eligible AS (
    SELECT f.*, count(*) OVER (PARTITION BY f.research_key) AS ct_series_count,
           row_number() OVER (PARTITION BY f.research_key
                              ORDER BY f.acquired_on DESC, f.lesion_found DESC NULLS LAST,
                                       f.series_uid) AS latest
    FROM gold.imaging_series_features f
    JOIN gold.clinical_features c USING (research_key)
    WHERE f.modality = 'CT' AND f.pixel_status IN ('ok', 'partial')
      AND f.acquired_on <= c.index_date
)
SELECT c.research_key, e.research_key IS NOT NULL AS has_imaging, {_LESION_NAMES},
       coalesce(e.ct_series_count, 0)::INTEGER AS ct_series_count,
       e.acquired_on AS imaging_data_through, $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN eligible e ON e.research_key = c.research_key AND e.latest = 1
"""


FEATURES = Table(
    layer="gold",
    name="imaging_features",
    modality="imaging",
    primary_key=("research_key",),
    description="One row per patient: the lesion on the latest CT acquired by the index date; "
    "measures are NULL (unknown) without one.",
    columns=(
        RESEARCH_KEY,
        Column(
            "has_imaging",
            "BOOLEAN",
            "A CT series with decoded pixels acquired by the index date.",
            "none",
            nullable=False,
        ),
        *_LESION_COLUMNS,
        Column(
            "ct_series_count",
            "INTEGER",
            "CT series with decoded pixels by the index date.",
            "none",
            min_value=0,
        ),
        Column(
            "imaging_data_through",
            "DATE",
            "Acquisition date of the series the features come from (point-in-time guard).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    build_sql=FEATURES_SQL,
)
