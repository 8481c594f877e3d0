"""Genomics gold: per-patient driver flags, TMB and polygenic score as of the index date."""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, Table
from . import reference
from .bronze import BRONZE_TABLES, GENETIC
from .silver import GERMLINE_DOSAGES, SAMPLES, SOMATIC_VARIANTS, _weights_sql

# ---- gold -----------------------------------------------------------------------------------

PRS_MIN_COVERAGE = 0.9
PRS_MIN_SAMPLE = 20  # patients with a score before its distribution is judged
_FLAGS = {
    "egfr_l858r": "biomarker = 'EGFR_L858R'",
    "egfr_exon19del": "biomarker = 'EGFR_exon19del'",
    "egfr_t790m": "biomarker = 'EGFR_T790M'",
    "kras_g12c": "biomarker = 'KRAS_G12C'",
    "kras_hotspot": "biomarker LIKE 'KRAS_%'",
    "braf_v600e": "biomarker = 'BRAF_V600E'",
    "alk_fusion": "variant_type = 'breakend' AND gene = 'ALK'",
    "tp53_mutated": "gene = 'TP53' AND variant_type <> 'breakend'",
    "stk11_mutated": "gene = 'STK11' AND variant_type <> 'breakend'",
    "actionable_biomarker": "actionable OR (variant_type = 'breakend' AND gene = 'ALK')",
}
TMB_TYPES = ("snv", "mnv", "insertion", "deletion", "complex")


FEATURES_SQL = f"""
WITH sequenced AS (
    SELECT s.research_key, max(s.collected_on) AS data_through
    FROM silver.genomic_samples s JOIN gold.clinical_features c USING (research_key)
    WHERE s.sample_type = 'tumor' AND s.in_file AND s.collected_on <= c.index_date
    GROUP BY 1
),
variants AS (
    SELECT v.* FROM silver.somatic_variants v JOIN sequenced q USING (research_key)
    JOIN gold.clinical_features c USING (research_key)
    WHERE v.passed AND v.collected_on <= c.index_date
),
{_weights_sql()},
score_dosages AS (  -- one dosage per patient and score SNP, whatever the samples
    SELECT * FROM silver.germline_dosages WHERE effect_dosage IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY research_key, score_variant_id ORDER BY sample_id) = 1
),
score AS (
    SELECT d.research_key, count(*) AS snps,
           sum((d.effect_dosage - 2 * w.freq) * w.weight) AS centred
    FROM score_dosages d JOIN weights w ON w.variant_id = d.score_variant_id
    GROUP BY 1
),
per_patient AS (
    SELECT research_key,
           {", ".join(f"bool_or({rule}) AS {name}" for name, rule in _FLAGS.items())},
           count(*) FILTER (variant_type IN {TMB_TYPES} AND in_panel) AS small_in_panel,
           count(*) AS somatic_variant_count
    FROM variants GROUP BY 1
)
SELECT c.research_key, q.research_key IS NOT NULL AS has_genomics,
       {", ".join(f"CASE WHEN q.research_key IS NULL THEN NULL ELSE coalesce(p.{name}, FALSE) END AS {name}" for name in _FLAGS)},
       CASE WHEN q.research_key IS NULL THEN NULL
            ELSE round(coalesce(p.small_in_panel, 0) / {reference.panel_megabases()}, 3) END
           AS tmb_per_mb,
       CASE WHEN q.research_key IS NULL THEN NULL
            ELSE CAST(coalesce(p.somatic_variant_count, 0) AS INTEGER) END AS somatic_variant_count,
       coalesce(g.snps >= {PRS_MIN_COVERAGE * len(reference.prs_weights())}, FALSE)
           AS has_germline,
       CASE WHEN g.snps >= {PRS_MIN_COVERAGE * len(reference.prs_weights())}
            THEN round(g.centred / {reference.prs_reference_moments()[1]}, 4) END AS prs_z,
       q.data_through AS genomics_data_through,
       $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN sequenced q USING (research_key)
LEFT JOIN per_patient p USING (research_key)
LEFT JOIN score g USING (research_key)
"""


FEATURES = Table(
    layer="gold",
    name="genomics_features",
    modality="genomics",
    primary_key=("research_key",),
    description="One row per patient: somatic drivers, actionable biomarkers and TMB from tumour "
    "samples collected by the index date; flags are NULL (unknown) without sequencing.",
    columns=(
        RESEARCH_KEY,
        Column(
            "has_genomics",
            "BOOLEAN",
            "A tumour panel collected by the index date.",
            "none",
            nullable=False,
        ),
        *[
            Column(name, "BOOLEAN", f"Somatic: {rule}.", "sensitive", GENETIC)
            for name, rule in _FLAGS.items()
        ],
        Column(
            "tmb_per_mb",
            "DOUBLE",
            "PASS small variants in the panel per Mb of panel.",
            "sensitive",
            GENETIC,
            min_value=0,
        ),
        Column(
            "somatic_variant_count",
            "INTEGER",
            "PASS somatic variants (all types).",
            "sensitive",
            GENETIC,
            min_value=0,
        ),
        Column(
            "has_germline",
            "BOOLEAN",
            f"Germline array covering ≥ {PRS_MIN_COVERAGE:.0%} of the score's SNPs.",
            "none",
            nullable=False,
        ),
        Column(
            "prs_z",
            "DOUBLE",
            "Polygenic score standardized with the reference weights' mean and SD "
            "(missing SNPs count at their expected dosage).",
            "sensitive",
            GENETIC,
        ),
        Column(
            "genomics_data_through",
            "DATE",
            "Latest tumour specimen date any feature used (the point-in-time guard; germline "
            "genotypes do not change over life and carry no date).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    build_sql=FEATURES_SQL,
)

TABLES = (*BRONZE_TABLES, SAMPLES, SOMATIC_VARIANTS, GERMLINE_DOSAGES, FEATURES)
