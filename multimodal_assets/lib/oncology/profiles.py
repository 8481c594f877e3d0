"""Patient profiles: one unit-length vector per modality a patient has, as of the index date.

Each modality's vector is its chosen gold features, standardized over the patients who have
that modality (a feature missing inside a present modality is set to the mean, 0), with a
constant 1 appended before the vector is scaled to unit length: the constant keeps how far a
patient is from the average (an average patient points along it) as well as in which direction.
Unit length is what lets the search compare any subset of modalities on one scale (see
`similarity.py`). An absent modality is NULL, never zeros.
"""

from __future__ import annotations

from ..platform.tables import RESEARCH_KEY, RUN_ID, Column, Table

MODALITIES = ("clinical", "genomics", "imaging", "notes", "wearables")
# modality -> (name, SQL over gold.patient_features); the reasons are in the README.
FEATURES: dict[str, tuple[tuple[str, str], ...]] = {
    "clinical": (
        ("age", "age_at_index"),
        (
            "stage",
            "CASE stage_group WHEN 'I' THEN 1 WHEN 'II' THEN 2 WHEN 'III' THEN 3 "
            "WHEN 'IV' THEN 4 END",
        ),
        ("ecog", "ecog"),
        ("adenocarcinoma", "CAST(histology = 'adenocarcinoma' AS DOUBLE)"),
        ("squamous", "CAST(histology = 'squamous_cell' AS DOUBLE)"),
        ("current_smoker", "CAST(smoking_status = 'current' AS DOUBLE)"),
        ("never_smoker", "CAST(smoking_status = 'never' AS DOUBLE)"),
        ("hemoglobin", "hemoglobin_g_dl"),
        ("albumin", "albumin_g_dl"),
        ("log_ldh", "ln(ldh_u_l)"),
        ("log_crp", "ln(crp_mg_l + 0.1)"),
        ("weight_change", "weight_change_pct_180d"),
        ("prior_treatments", "prior_antineoplastic_count"),
    ),
    "genomics": (
        ("egfr_sensitizing", "CAST(egfr_l858r OR egfr_exon19del AS DOUBLE)"),
        ("kras", "CAST(kras_hotspot AS DOUBLE)"),
        ("alk", "CAST(alk_fusion AS DOUBLE)"),
        ("braf", "CAST(braf_v600e AS DOUBLE)"),
        ("tp53", "CAST(tp53_mutated AS DOUBLE)"),
        ("stk11", "CAST(stk11_mutated AS DOUBLE)"),
        ("log_tmb", "ln(1 + tmb_per_mb)"),
    ),
    "imaging": (
        ("lesion_found", "CAST(lesion_found AS DOUBLE)"),
        ("diameter", "lesion_diameter_mm"),
        ("log_volume", "ln(1 + lesion_volume_ml)"),
        ("mean_hu", "lesion_mean_hu"),
        ("sd_hu", "lesion_sd_hu"),
        ("contrast", "lesion_contrast"),
        ("entropy", "lesion_entropy"),
    ),
    "notes": (
        ("ecog", "notes_ecog"),
        ("symptoms", "notes_symptom_count"),
        ("denied_symptoms", "notes_negated_symptom_count"),
        ("prior_treatments", "notes_prior_treatments"),
        ("metastatic", "CAST(notes_metastatic AS DOUBLE)"),
        (
            "driver_mentioned",
            "CAST(notes_egfr_positive OR notes_kras_positive OR notes_alk_positive AS DOUBLE)",
        ),
    ),
    "wearables": (
        ("log_steps", "ln(1 + steps_mean_28d)"),
        ("steps_slope", "steps_slope_28d"),
        ("resting_hr", "resting_hr_mean_28d"),
        ("sleep", "sleep_mean_28d"),
    ),
}


def vector_column(modality: str) -> str:
    return f"{modality}_vector"


def _profile_sql() -> str:
    raw, standardized, norms, vectors = [], [], [], []
    for modality, features in FEATURES.items():
        present = f"has_{modality}"
        names = []
        for name, expression in features:
            column = f"{modality}__{name}"
            raw.append(f"CAST({expression} AS DOUBLE) AS {column}")
            # Standardized over the patients who have the modality; missing inside it = mean.
            on = f"CASE WHEN {present} THEN {column} END"
            standardized.append(
                f"coalesce(({column} - avg({on}) OVER ()) / "
                f"nullif(stddev_pop({on}) OVER (), 0), 0) AS {column}"
            )
            names.append(column)
        norm = f"{modality}__norm"
        norms.append(f"sqrt({' + '.join(f'{c} * {c}' for c in names)} + 1.0) AS {norm}")
        parts = ", ".join(f"CAST({c} / {norm} AS FLOAT)" for c in [*names, "1.0"])
        vectors.append(f"CASE WHEN {present} THEN [{parts}] END AS {vector_column(modality)}")
    flags = ", ".join(f"has_{m}" for m in MODALITIES)
    through = ", ".join(f"{m}_data_through" for m in MODALITIES)
    return f"""
WITH raw AS (
    SELECT research_key, index_date, {flags}, {through}, {", ".join(raw)}
    FROM gold.patient_features
),
standardized AS (
    SELECT research_key, index_date, {flags}, {through}, {", ".join(standardized)} FROM raw
),
normed AS (SELECT *, {", ".join(norms)} FROM standardized)
SELECT research_key, index_date, {flags}, {", ".join(vectors)}, {through}, $run_id AS _run_id
FROM normed
"""


PATIENT_PROFILES = Table(
    layer="gold",
    name="patient_profiles",
    modality="oncology",
    primary_key=("research_key",),
    description="One row per cohort patient as of the index date: a unit-length vector per "
    "modality it has (NULL when absent), the availability mask and each modality's data date.",
    columns=(
        RESEARCH_KEY,
        Column("index_date", "DATE", "First NSCLC diagnosis date.", "phi", "hipaa", nullable=False),
        *(
            Column(
                f"has_{m}",
                "BOOLEAN",
                f"The patient has {m} data by the index date.",
                "none",
                nullable=False,
            )
            for m in MODALITIES
        ),
        *(
            Column(
                vector_column(m),
                "FLOAT[]",
                f"Standardized {m} features, unit length (NULL when the modality is absent).",
                "sensitive",
            )
            for m in MODALITIES
        ),
        *(
            Column(
                f"{m}_data_through",
                "DATE",
                f"Latest {m} source date the vector used.",
                "phi",
                "hipaa",
            )
            for m in MODALITIES
        ),
        RUN_ID,
    ),
    build_sql=_profile_sql(),
)
