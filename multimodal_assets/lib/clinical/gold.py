"""Clinical gold: per-patient features as of the index date, and the 12-month outcomes."""

from __future__ import annotations

from ..platform.tables import RUN_ID, Column, Table
from .vocabulary import (
    HISTOLOGIES,
    HISTOLOGY_BY_SNOMED,
    LOINC,
    RK,
    SEXES,
    SMOKING_BY_SNOMED,
    STAGE_GROUPS,
)


def _feature_lineage() -> dict:
    obs = ("silver.observations", "value")
    when = ("silver.observations", "effective_time")
    lab = (obs, ("silver.observations", "unit"), when)
    onset = ("silver.conditions", "onset_date")
    return {
        "research_key": (("silver.patients", "research_key"),),
        "has_clinical": (("silver.patients", "research_key"),),
        "in_nsclc_cohort": (("silver.conditions", "is_nsclc"),),
        "index_date": (onset, ("silver.conditions", "is_nsclc")),
        "age_at_index": (("silver.patients", "birth_date"), onset),
        "sex": (("silver.patients", "sex"),),
        "race": (("silver.patients", "race"),),
        "site": (("silver.patients", "site"),),
        "research_consent": (
            ("silver.patients", "research_consent"),
            ("silver.patients", "consent_opt_out"),
        ),
        "histology": (("silver.conditions", "snomed_code"),),
        "stage_group": (("silver.conditions", "stage_group"),),
        "ecog": (obs, when),
        "smoking_status": (("silver.observations", "value_code"), when),
        **{
            c: lab
            for c in (
                "hemoglobin_g_dl",
                "albumin_g_dl",
                "ldh_u_l",
                "crp_mg_l",
                "weight_kg",
                "weight_change_pct_180d",
            )
        },
        "prior_antineoplastic_count": (
            ("silver.medications", "rxnorm_code"),
            ("silver.medications", "authored_date"),
        ),
        "comorbidity_count": (("silver.conditions", "icd10_code"), onset),
        "encounters_365d": (("silver.encounters", "start_time"),),
        "clinical_data_through": (
            ("silver.observations", "effective_time"),
            ("silver.medications", "authored_date"),
            onset,
            ("silver.encounters", "start_time"),
        ),
    }


def _feature_record_filters() -> dict:
    """Which silver records feed each feature (the lineage API narrows provenance with these)."""
    by_loinc = {
        "hemoglobin_g_dl": "hemoglobin",
        "albumin_g_dl": "albumin",
        "ldh_u_l": "ldh",
        "crp_mg_l": "crp",
        "weight_kg": "weight",
        "weight_change_pct_180d": "weight",
        "ecog": "ecog",
        "smoking_status": "smoking",
    }
    # Only observations on or before the patient's index date can feed a feature.
    before_index = (
        "CAST(effective_time AS DATE) <= (SELECT g.index_date FROM "
        "gold.clinical_features g WHERE g.research_key = observations.research_key)"
    )
    out = {
        c: {"silver.observations": f"loinc_code = '{LOINC[k]}' AND {before_index}"}
        for c, k in by_loinc.items()
    }
    nsclc = {"silver.conditions": "is_nsclc"}
    out.update(
        index_date=nsclc,
        in_nsclc_cohort=nsclc,
        histology=nsclc,
        stage_group=nsclc,
        comorbidity_count={"silver.conditions": "NOT is_nsclc"},
        prior_antineoplastic_count={"silver.medications": "is_antineoplastic"},
    )
    return out


OUTCOME_HORIZON_DAYS = 365

# Secondary malignancies (ICD-10-CM C77-C79) after the index date mark progression.
CLINICAL_OUTCOMES_SQL = f"""
WITH cohort AS (
    SELECT research_key, index_date FROM gold.clinical_features WHERE in_nsclc_cohort
),
progression AS (
    SELECT c.research_key, min(c.onset_date) AS progression_date
    FROM silver.conditions c JOIN cohort k USING (research_key)
    WHERE regexp_matches(c.icd10_code, '^C7[7-9]') AND c.onset_date > k.index_date
    GROUP BY 1
),
seen AS (
    SELECT research_key, max(day) AS observed_until FROM (
        SELECT research_key, CAST(start_time AS DATE) AS day FROM silver.encounters
        UNION ALL SELECT research_key, onset_date FROM silver.conditions
    ) GROUP BY 1
)
SELECT k.research_key, k.index_date, p.progression_date, pt.deceased_date AS death_date,
       coalesce(p.progression_date <= k.index_date + INTERVAL {OUTCOME_HORIZON_DAYS} DAY, FALSE)
       OR coalesce(pt.deceased_date <= k.index_date + INTERVAL {OUTCOME_HORIZON_DAYS} DAY, FALSE)
           AS progressed_or_died_12m,
       s.observed_until, $run_id AS _run_id
FROM cohort k
JOIN silver.patients pt USING (research_key)
LEFT JOIN progression p USING (research_key)
LEFT JOIN seen s USING (research_key)
"""


CLINICAL_OUTCOMES = Table(
    layer="gold",
    name="clinical_outcomes",
    modality="clinical",
    primary_key=("research_key",),
    description="12-month progression or death after the NSCLC index date, from the EHR (the label).",
    columns=(
        RK,
        Column("index_date", "DATE", "First NSCLC diagnosis date.", "phi", "hipaa", nullable=False),
        Column(
            "progression_date",
            "DATE",
            "First secondary malignancy (ICD-10-CM C77-C79) after the index date.",
            "phi",
            "hipaa",
        ),
        Column("death_date", "DATE", "Date of death, if recorded.", "phi", "hipaa"),
        Column(
            "progressed_or_died_12m",
            "BOOLEAN",
            "Progression or death within 365 days of the index date.",
            "sensitive",
            "hipaa",
            nullable=False,
        ),
        Column("observed_until", "DATE", "Latest dated EHR record of the patient.", "phi", "hipaa"),
        RUN_ID,
    ),
    build_sql=CLINICAL_OUTCOMES_SQL,
)


CLINICAL_FEATURES_SQL = f"""
WITH idx AS (
    SELECT research_key, min(onset_date) AS index_date,
           arg_min(snomed_code, onset_date) AS snomed_code,
           arg_min(stage_group, onset_date) AS stage_group
    FROM silver.conditions WHERE is_nsclc AND onset_date IS NOT NULL GROUP BY research_key
),
obs AS (
    SELECT o.research_key, o.loinc_code, o.value, o.value_code, o.unit, o.effective_time,
           i.index_date
    FROM silver.observations o JOIN idx i USING (research_key)
    WHERE CAST(o.effective_time AS DATE) <= i.index_date
),
latest AS (
    SELECT research_key,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["hemoglobin"]}' AND unit = 'g/dL') AS hemoglobin_g_dl,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["albumin"]}' AND unit = 'g/dL') AS albumin_g_dl,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["ldh"]}' AND unit = 'U/L') AS ldh_u_l,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["crp"]}' AND unit = 'mg/L') AS crp_mg_l,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["weight"]}' AND unit = 'kg') AS weight_kg,
        arg_min(value, effective_time) FILTER (loinc_code = '{LOINC["weight"]}' AND unit = 'kg'
            AND CAST(effective_time AS DATE) >= index_date - INTERVAL 180 DAY) AS weight_first_180d,
        arg_max(value, effective_time) FILTER (loinc_code = '{LOINC["ecog"]}') AS ecog,
        arg_max(value_code, effective_time) FILTER (loinc_code = '{LOINC["smoking"]}') AS smoking_code,
        max(CAST(effective_time AS DATE)) AS observed_through
    FROM obs GROUP BY research_key
),
meds AS (
    SELECT m.research_key, count(DISTINCT m.rxnorm_code) AS prior_antineoplastic_count,
           max(m.authored_date) AS treated_through
    FROM silver.medications m JOIN idx i USING (research_key)
    WHERE m.is_antineoplastic AND m.authored_date < i.index_date GROUP BY m.research_key
),
comorb AS (
    SELECT c.research_key, count(DISTINCT coalesce(c.icd10_code, c.snomed_code)) AS comorbidity_count,
           max(c.onset_date) AS diagnosed_through
    FROM silver.conditions c JOIN idx i USING (research_key)
    WHERE NOT c.is_nsclc AND c.onset_date <= i.index_date GROUP BY c.research_key
),
enc AS (
    SELECT e.research_key, count(*) AS encounters_365d,
           max(CAST(e.start_time AS DATE)) AS seen_through
    FROM silver.encounters e JOIN idx i USING (research_key)
    WHERE CAST(e.start_time AS DATE) BETWEEN i.index_date - INTERVAL 365 DAY AND i.index_date
    GROUP BY e.research_key
),
histology_map(snomed_code, histology) AS (
    VALUES {", ".join(f"('{k}', '{v}')" for k, v in HISTOLOGY_BY_SNOMED.items())}
),
smoking_map(smoking_code, smoking_status) AS (
    VALUES {", ".join(f"('{k}', '{v}')" for k, v in SMOKING_BY_SNOMED.items())}
)
SELECT
    p.research_key,
    TRUE AS has_clinical,
    i.index_date IS NOT NULL AS in_nsclc_cohort,
    i.index_date,
    CAST(date_part('year', age(i.index_date, p.birth_date)) AS INTEGER) AS age_at_index,
    p.sex, p.race, p.site, p.research_consent,
    h.histology,
    i.stage_group,
    CAST(l.ecog AS INTEGER) AS ecog,
    s.smoking_status,
    l.hemoglobin_g_dl, l.albumin_g_dl, l.ldh_u_l, l.crp_mg_l, l.weight_kg,
    round(100.0 * (l.weight_kg - l.weight_first_180d) / nullif(l.weight_first_180d, 0), 2)
        AS weight_change_pct_180d,
    CASE WHEN i.index_date IS NULL THEN NULL ELSE coalesce(m.prior_antineoplastic_count, 0) END
        AS prior_antineoplastic_count,
    CASE WHEN i.index_date IS NULL THEN NULL ELSE coalesce(c.comorbidity_count, 0) END
        AS comorbidity_count,
    CASE WHEN i.index_date IS NULL THEN NULL ELSE coalesce(e.encounters_365d, 0) END
        AS encounters_365d,
    CASE WHEN i.index_date IS NOT NULL THEN
        greatest(i.index_date, l.observed_through, m.treated_through, c.diagnosed_through,
                 e.seen_through) END AS clinical_data_through,
    $run_id AS _run_id
FROM silver.patients p
LEFT JOIN idx i USING (research_key)
LEFT JOIN latest l USING (research_key)
LEFT JOIN meds m USING (research_key)
LEFT JOIN comorb c USING (research_key)
LEFT JOIN enc e USING (research_key)
LEFT JOIN histology_map h ON h.snomed_code = i.snomed_code
LEFT JOIN smoking_map s ON s.smoking_code = l.smoking_code
"""


CLINICAL_FEATURES = Table(
    layer="gold",
    name="clinical_features",
    modality="clinical",
    primary_key=("research_key",),
    description="One row per patient: clinical features as of the NSCLC index date (no later value).",
    columns=(
        RK,
        Column(
            "has_clinical",
            "BOOLEAN",
            "Patient has EHR data (always true here).",
            "none",
            nullable=False,
        ),
        Column(
            "in_nsclc_cohort",
            "BOOLEAN",
            "Patient has an NSCLC (C34.x) diagnosis.",
            "none",
            nullable=False,
        ),
        Column("index_date", "DATE", "First NSCLC diagnosis date.", "phi", "hipaa"),
        Column(
            "age_at_index",
            "INTEGER",
            "Age in whole years at the index date.",
            "quasi_identifier",
            "hipaa",
            min_value=0,
            max_value=120,
        ),
        Column(
            "sex", "VARCHAR", "Administrative gender.", "quasi_identifier", "hipaa", allowed=SEXES
        ),
        Column("race", "VARCHAR", "Self-reported race.", "sensitive", "gdpr_art9"),
        Column("site", "VARCHAR", "Treating site.", "quasi_identifier", "hipaa"),
        Column(
            "research_consent",
            "BOOLEAN",
            "Research use permitted (latest Consent).",
            "none",
            nullable=False,
        ),
        Column(
            "histology", "VARCHAR", "NSCLC histology.", "sensitive", "hipaa", allowed=HISTOLOGIES
        ),
        Column(
            "stage_group",
            "VARCHAR",
            "Stage group at diagnosis.",
            "sensitive",
            "hipaa",
            allowed=STAGE_GROUPS,
        ),
        Column(
            "ecog",
            "INTEGER",
            "Latest ECOG performance status on or before index.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=5,
        ),
        Column(
            "smoking_status",
            "VARCHAR",
            "Latest smoking status on or before index.",
            "sensitive",
            "hipaa",
            allowed=tuple(SMOKING_BY_SNOMED.values()),
        ),
        Column(
            "hemoglobin_g_dl",
            "DOUBLE",
            "Latest hemoglobin (g/dL) on or before index.",
            "sensitive",
            "hipaa",
            min_value=3,
            max_value=25,
        ),
        Column(
            "albumin_g_dl",
            "DOUBLE",
            "Latest albumin (g/dL) on or before index.",
            "sensitive",
            "hipaa",
            min_value=0.5,
            max_value=7,
        ),
        Column(
            "ldh_u_l",
            "DOUBLE",
            "Latest LDH (U/L) on or before index.",
            "sensitive",
            "hipaa",
            min_value=20,
            max_value=5000,
        ),
        Column(
            "crp_mg_l",
            "DOUBLE",
            "Latest CRP (mg/L) on or before index.",
            "sensitive",
            "hipaa",
            min_value=0,
            max_value=500,
        ),
        Column(
            "weight_kg",
            "DOUBLE",
            "Latest body weight (kg) on or before index.",
            "sensitive",
            "hipaa",
            min_value=20,
            max_value=300,
        ),
        Column(
            "weight_change_pct_180d",
            "DOUBLE",
            "Weight change (%) from the earliest weight in the 180 days before index.",
            "sensitive",
            "hipaa",
            min_value=-60,
            max_value=60,
        ),
        Column(
            "prior_antineoplastic_count",
            "INTEGER",
            "Distinct systemic cancer drugs ordered before the index date.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "comorbidity_count",
            "INTEGER",
            "Distinct non-NSCLC diagnoses with onset on or before index.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "encounters_365d",
            "INTEGER",
            "Encounters in the 365 days up to the index date.",
            "sensitive",
            "hipaa",
            min_value=0,
        ),
        Column(
            "clinical_data_through",
            "DATE",
            "Latest source date any feature of this row used (the point-in-time guard).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    record_filters=_feature_record_filters(),
    build_sql=CLINICAL_FEATURES_SQL,
)
