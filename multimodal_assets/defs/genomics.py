"""Genomics assets: VCF/BCF deliveries and manifests → bronze sites, calls and samples → silver
samples and annotated somatic variants → per-patient drivers and TMB as of the index date."""

import dagster as dg

from multimodal_assets.lib import genomics
from multimodal_assets.lib.genomics import (
    BRONZE_TABLES,
    FEATURES,
    GERMLINE_DOSAGES,
    SAMPLES,
    SOMATIC_VARIANTS,
)

from .governed import (
    asset_key,
    bronze_ingest_multi_asset,
    governed_table_asset,
)

genomics_landing = bronze_ingest_multi_asset(
    "genomics_landing",
    list(BRONZE_TABLES),
    genomics.parse_genomics_file,
    kinds={"duckdb", "vcf"},
)


samples = governed_table_asset(
    SAMPLES,
    kinds={"duckdb", "sql"},
)

somatic_variants = governed_table_asset(
    SOMATIC_VARIANTS,
    kinds={"duckdb", "sql"},
)

germline_dosages = governed_table_asset(
    GERMLINE_DOSAGES,
    kinds={"duckdb", "sql"},
)


def _prs_distribution(conn) -> dg.AssetCheckResult:
    """The standardized score of the patients with arrays should look standard normal."""
    n, mean, sd = conn.execute(
        "SELECT count(prs_z), avg(prs_z), stddev_samp(prs_z) FROM gold.genomics_features"
    ).fetchall()[0]
    sane = n < genomics.PRS_MIN_SAMPLE or (abs(mean) <= 0.5 and 0.5 <= sd <= 2.0)
    return dg.AssetCheckResult(
        asset_key=asset_key(FEATURES),
        check_name="prs_distribution_sane",
        passed=bool(sane),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "patients_with_score": n,
            "mean": mean if mean is not None else "n/a",
            "sd": sd if sd is not None else "n/a",
            "assessed": n >= genomics.PRS_MIN_SAMPLE,
        },
    )


genomics_features = governed_table_asset(
    FEATURES,
    kinds={"duckdb", "sql"},
    monitors=[
        (
            dg.AssetCheckSpec(
                "prs_distribution_sane",
                asset=asset_key(FEATURES),
                description="Standardized PRS against the reference weights: |mean| ≤ 0.5 and "
                f"0.5 ≤ SD ≤ 2 (assessed from {genomics.PRS_MIN_SAMPLE} patients).",
            ),
            _prs_distribution,
        )
    ],
)

assets = [genomics_landing, samples, somatic_variants, germline_dosages, genomics_features]
