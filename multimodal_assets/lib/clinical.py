"""Clinical (FHIR R4) modality: table declarations, resource flatteners and the gold feature SQL."""

from __future__ import annotations

from collections.abc import Iterable

from . import fhir, units
from .fhir_time import parse_date, parse_datetime
from .pseudonym import research_key
from .tables import RESEARCH_KEY, Column, Table, provenance_columns

# ---- reference vocabularies the features rely on -------------------------------------------
HISTOLOGY_BY_SNOMED = {
    "254626006": "adenocarcinoma",  # Adenocarcinoma of lung (disorder)
    "254634000": "squamous_cell",  # Squamous cell carcinoma of lung (disorder)
    "254637007": "nsclc_nos",  # Non-small cell lung cancer (disorder)
}
SMOKING_BY_SNOMED = {"77176002": "current", "8517006": "former", "266919005": "never"}
ANTINEOPLASTIC_RXNORM = {
    "40048": "carboplatin",
    "2555": "cisplatin",
    "68446": "pemetrexed",
    "72962": "docetaxel",
    "1547545": "pembrolizumab",
    "1721560": "osimertinib",
    "1727455": "alectinib",
    "1597876": "nivolumab",
    "1792776": "atezolizumab",
}
LOINC = {
    "hemoglobin": "718-7",
    "albumin": "1751-7",
    "ldh": "2532-0",
    "crp": "1988-5",
    "weight": "29463-7",
    "ecog": "89247-1",
    "smoking": "72166-2",
    "stage": "21908-9",
}
STAGE_GROUPS = ("I", "II", "III", "IV")
HISTOLOGIES = ("adenocarcinoma", "squamous_cell", "nsclc_nos")
SEXES = ("male", "female", "other", "unknown")

RK = RESEARCH_KEY


BRONZE = "bronze.fhir_resources"


def _silver(
    name: str,
    description: str,
    columns: tuple[Column, ...],
    pk=("_source_locator",),
    locator="FHIR resource type/id this row was flattened from.",
    locator_class="quasi_identifier",
) -> Table:
    # Every silver column is flattened from the delivered resource JSON; the research key comes
    # from the patient dimension (for patients themselves, from their own resource).
    key_source = (
        (BRONZE, "resource_json") if name == "patients" else ("silver.patients", "research_key")
    )
    lineage = {c.name: ((BRONZE, "resource_json"),) for c in columns}
    lineage.update(
        research_key=(key_source,),
        _source_sha256=((BRONZE, "_source_sha256"),),
        _source_locator=((BRONZE, "_source_locator"),),
    )
    return Table(
        layer="silver",
        name=name,
        modality="clinical",
        asset_key=("clinical", name),
        description=description,
        primary_key=pk,
        columns=(RK, *columns, *provenance_columns(locator, locator_class)),
        lineage=lineage,
    )


FHIR_RESOURCES = Table(
    layer="bronze",
    name="fhir_resources",
    modality="clinical",
    asset_key=("clinical", "fhir_resources"),
    restricted=True,
    description="Every FHIR R4 resource of every ingested clinical file, as delivered (restricted).",
    columns=(
        Column("resource_type", "VARCHAR", "FHIR resourceType.", "none", nullable=False),
        Column(
            "resource_id",
            "VARCHAR",
            "FHIR logical id (Patient ids identify people).",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column(
            "patient_ref",
            "VARCHAR",
            "Id of the Patient the resource is about, if any.",
            "phi",
            "hipaa",
        ),
        Column("bundle_type", "VARCHAR", "Type of the delivering Bundle, if any.", "none"),
        Column(
            "resource_json",
            "JSON",
            "The resource exactly as delivered (decimals verbatim).",
            "phi",
            "hipaa",
            nullable=False,
        ),
        *provenance_columns("FHIR resource type/id within the file.", "phi"),
    ),
)

PATIENTS = _silver(
    "patients",
    "Identified patient demographics and research consent, one row per patient.",
    (
        Column(
            "fhir_patient_id",
            "VARCHAR",
            "FHIR Patient.id at the source.",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column("mrn", "VARCHAR", "Medical record number.", "phi", "hipaa"),
        Column("family_name", "VARCHAR", "Family name.", "phi", "hipaa"),
        Column("given_name", "VARCHAR", "Given names, space-separated.", "phi", "hipaa"),
        Column("birth_date", "DATE", "Date of birth.", "phi", "hipaa"),
        Column(
            "sex", "VARCHAR", "Administrative gender.", "quasi_identifier", "hipaa", allowed=SEXES
        ),
        Column(
            "race",
            "VARCHAR",
            "Self-reported race (US Core OMB category text).",
            "sensitive",
            "gdpr_art9",
        ),
        Column("deceased_date", "DATE", "Date of death, if deceased.", "phi", "hipaa"),
        Column("address_line", "VARCHAR", "Street address.", "phi", "hipaa"),
        Column("city", "VARCHAR", "City.", "phi", "hipaa"),
        Column("state", "VARCHAR", "State.", "quasi_identifier", "hipaa"),
        Column("postal_code", "VARCHAR", "ZIP code.", "phi", "hipaa"),
        Column("phone", "VARCHAR", "Phone number.", "phi", "hipaa"),
        Column(
            "site", "VARCHAR", "Treating site (managing organization).", "quasi_identifier", "hipaa"
        ),
        Column(
            "research_consent",
            "BOOLEAN",
            "True only if the latest research Consent permits.",
            "none",
            nullable=False,
        ),
        Column(
            "consent_opt_out",
            "BOOLEAN",
            "True if a permit was later withdrawn.",
            "none",
            nullable=False,
        ),
        Column(
            "consent_date", "DATE", "Date of the latest research Consent decision.", "phi", "hipaa"
        ),
    ),
    pk=("research_key",),
    locator="FHIR Patient/id this row was flattened from.",
    locator_class="phi",
)

ENCOUNTERS = _silver(
    "encounters",
    "Encounters with class, type, period and site.",
    (
        Column("status", "VARCHAR", "Encounter status.", "none"),
        Column("class_code", "VARCHAR", "Encounter class (AMB, IMP, EMER…).", "none"),
        Column("type_code", "VARCHAR", "Encounter type code (SNOMED).", "sensitive", "hipaa"),
        Column("type_display", "VARCHAR", "Encounter type text.", "sensitive", "hipaa"),
        Column("start_time", "TIMESTAMP", "Period start (UTC).", "phi", "hipaa"),
        Column("end_time", "TIMESTAMP", "Period end (UTC).", "phi", "hipaa"),
        Column("service_site", "VARCHAR", "Service provider display.", "quasi_identifier", "hipaa"),
    ),
)

CONDITIONS = _silver(
    "conditions",
    "Diagnoses with ICD-10-CM and SNOMED codes, onset and cancer stage.",
    (
        Column("icd10_code", "VARCHAR", "ICD-10-CM code.", "sensitive", "hipaa"),
        Column("snomed_code", "VARCHAR", "SNOMED CT code.", "sensitive", "hipaa"),
        Column("display", "VARCHAR", "Condition text.", "sensitive", "hipaa"),
        Column("clinical_status", "VARCHAR", "active, resolved, …", "none"),
        Column("onset_date", "DATE", "Onset date.", "phi", "hipaa"),
        Column("recorded_date", "DATE", "Date recorded.", "phi", "hipaa"),
        Column(
            "stage_group",
            "VARCHAR",
            "Stage group I–IV from Condition.stage.",
            "sensitive",
            "hipaa",
            allowed=STAGE_GROUPS,
        ),
        Column(
            "is_nsclc",
            "BOOLEAN",
            "ICD-10-CM C34.x (malignant neoplasm of lung).",
            "sensitive",
            "hipaa",
            nullable=False,
        ),
    ),
)

OBSERVATIONS = _silver(
    "observations",
    "Observations (labs, vitals, ECOG, smoking) with units normalized to UCUM.",
    (
        Column("loinc_code", "VARCHAR", "LOINC code.", "none"),
        Column("display", "VARCHAR", "Observation name.", "none"),
        Column("category", "VARCHAR", "Observation category code.", "none"),
        Column("effective_time", "TIMESTAMP", "Effective time (UTC).", "phi", "hipaa"),
        Column(
            "value",
            "DOUBLE",
            "Numeric value in `unit` (canonical where known).",
            "sensitive",
            "hipaa",
        ),
        Column("unit", "VARCHAR", "UCUM unit of `value`.", "none"),
        Column(
            "value_original_text",
            "VARCHAR",
            "Numeric value exactly as delivered.",
            "sensitive",
            "hipaa",
        ),
        Column("unit_original", "VARCHAR", "Unit as delivered.", "none"),
        Column(
            "unit_converted",
            "BOOLEAN",
            "True if `value` was converted from another unit.",
            "none",
            nullable=False,
        ),
        Column(
            "value_code",
            "VARCHAR",
            "Coded value (e.g. SNOMED smoking status).",
            "sensitive",
            "hipaa",
        ),
        Column("value_display", "VARCHAR", "Coded or string value text.", "sensitive", "hipaa"),
    ),
)

MEDICATIONS = _silver(
    "medications",
    "Medication requests with RxNorm codes.",
    (
        Column("rxnorm_code", "VARCHAR", "RxNorm code.", "sensitive", "hipaa"),
        Column("display", "VARCHAR", "Medication text.", "sensitive", "hipaa"),
        Column("status", "VARCHAR", "Request status.", "none"),
        Column("intent", "VARCHAR", "Request intent.", "none"),
        Column("authored_date", "DATE", "Date authored.", "phi", "hipaa"),
        Column(
            "is_antineoplastic",
            "BOOLEAN",
            "RxNorm code is a lung-cancer systemic therapy.",
            "sensitive",
            "hipaa",
            nullable=False,
        ),
    ),
)

PROCEDURES = _silver(
    "procedures",
    "Procedures with SNOMED codes.",
    (
        Column("snomed_code", "VARCHAR", "SNOMED CT code.", "sensitive", "hipaa"),
        Column("display", "VARCHAR", "Procedure text.", "sensitive", "hipaa"),
        Column("status", "VARCHAR", "Procedure status.", "none"),
        Column("performed_date", "DATE", "Date performed.", "phi", "hipaa"),
    ),
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


DEVICE_USE = _silver(
    "device_use",
    "Which wearable device each patient wore when (FHIR DeviceUseStatement).",
    (
        Column(
            "device_id",
            "VARCHAR",
            "Device serial (identifier value).",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column("period_start", "TIMESTAMP", "Start of wear.", "phi", "hipaa"),
        Column("period_end", "TIMESTAMP", "End of wear (inclusive day).", "phi", "hipaa"),
        Column("status", "VARCHAR", "Statement status.", "none"),
    ),
)

CLINICAL_FEATURES = Table(
    layer="gold",
    name="clinical_features",
    modality="clinical",
    asset_key=("clinical", "clinical_features"),
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
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage=_feature_lineage(),
    record_filters=_feature_record_filters(),
)

SILVER_TABLES = (
    PATIENTS,
    ENCOUNTERS,
    CONDITIONS,
    OBSERVATIONS,
    MEDICATIONS,
    PROCEDURES,
    DEVICE_USE,
)
OUTCOME_HORIZON_DAYS = 365
CLINICAL_OUTCOMES = Table(
    layer="gold",
    name="clinical_outcomes",
    modality="clinical",
    asset_key=("clinical", "clinical_outcomes"),
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
        Column("_run_id", "VARCHAR", "Dagster run that wrote this row.", "none"),
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        "index_date": (("gold.clinical_features", "index_date"),),
        "progression_date": (
            ("silver.conditions", "icd10_code"),
            ("silver.conditions", "onset_date"),
        ),
        "death_date": (("silver.patients", "deceased_date"),),
        "progressed_or_died_12m": (
            ("silver.conditions", "onset_date"),
            ("silver.patients", "deceased_date"),
            ("gold.clinical_features", "index_date"),
        ),
        "observed_until": (
            ("silver.encounters", "start_time"),
            ("silver.conditions", "onset_date"),
        ),
    },
)

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

TABLES = (FHIR_RESOURCES, *SILVER_TABLES, CLINICAL_FEATURES, CLINICAL_OUTCOMES)


# ---- flatteners: one FHIR resource -> one silver row (without research key/provenance) -----
def _first_coding(concept: dict | None, system_hint: str | None = None) -> dict:
    codings = (concept or {}).get("coding") or []
    if system_hint:
        for coding in codings:
            if system_hint in (coding.get("system") or ""):
                return coding
        return {}
    return codings[0] if codings else {}


def _mrn(patient: dict) -> str | None:
    for ident in patient.get("identifier") or []:
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if fhir.MRN_TYPE_CODE in codes:
            return ident.get("value")
    return None


def _us_core_text(patient: dict, suffix: str) -> str | None:
    for ext in patient.get("extension") or []:
        if (ext.get("url") or "").endswith(suffix):
            for sub in ext.get("extension") or []:
                if sub.get("url") == "text":
                    return sub.get("valueString")
    return None


def _stage_group(condition: dict) -> str | None:
    for stage in condition.get("stage") or []:
        summary = stage.get("summary") or {}
        for text in [c.get("code") for c in summary.get("coding") or []] + [summary.get("text")]:
            group = stage_group_of(text)
            if group:
                return group
    return None


def stage_group_of(text: str | None) -> str | None:
    """'Stage IIIA', 'IIIB', 'IV' → 'III'/'IV'; None when it is not a stage."""
    if not text:
        return None
    token = text.upper().replace("STAGE", "").strip()
    for group in ("IV", "III", "II", "I"):
        if token.startswith(group):
            return group
    return None


def flatten_patient(res: dict) -> dict:
    name = next(iter(res.get("name") or []), {})
    address = next(iter(res.get("address") or []), {})
    phone = next(
        (t.get("value") for t in res.get("telecom") or [] if t.get("system") == "phone"), None
    )
    return {
        "fhir_patient_id": res.get("id"),
        "mrn": _mrn(res),
        "family_name": name.get("family"),
        "given_name": " ".join(name.get("given") or []) or None,
        "birth_date": parse_date(res.get("birthDate")),
        "sex": res.get("gender"),
        "race": _us_core_text(res, "us-core-race"),
        "deceased_date": parse_date(res.get("deceasedDateTime")),
        "address_line": " ".join(address.get("line") or []) or None,
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "phone": phone,
        "site": (res.get("managingOrganization") or {}).get("display"),
    }


def flatten_encounter(res: dict) -> dict:
    period = res.get("period") or {}
    encounter_type = _first_coding(next(iter(res.get("type") or []), None))
    return {
        "status": res.get("status"),
        "class_code": (res.get("class") or {}).get("code"),
        "type_code": encounter_type.get("code"),
        "type_display": encounter_type.get("display"),
        "start_time": parse_datetime(period.get("start")),
        "end_time": parse_datetime(period.get("end")),
        "service_site": (res.get("serviceProvider") or {}).get("display"),
    }


def flatten_condition(res: dict) -> dict:
    icd = _first_coding(res.get("code"), "icd-10")
    snomed = _first_coding(res.get("code"), "snomed")
    status = _first_coding(res.get("clinicalStatus"))
    icd_code = icd.get("code")
    return {
        "icd10_code": icd_code,
        "snomed_code": snomed.get("code"),
        "display": (res.get("code") or {}).get("text")
        or snomed.get("display")
        or icd.get("display"),
        "clinical_status": status.get("code"),
        "onset_date": parse_date(res.get("onsetDateTime")),
        "recorded_date": parse_date(res.get("recordedDate")),
        "stage_group": _stage_group(res),
        "is_nsclc": bool(icd_code and icd_code.upper().startswith("C34")),
    }


def flatten_observation(res: dict) -> dict:
    loinc = _first_coding(res.get("code"), "loinc")
    category = _first_coding(next(iter(res.get("category") or []), None))
    effective = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start")
    value_text = unit = None
    value = None
    quantity = res.get("valueQuantity")
    if quantity is not None and quantity.get("value") is not None:
        value_text = str(quantity["value"])
        value = float(quantity["value"])
        unit = quantity.get("code") or quantity.get("unit")
    elif res.get("valueInteger") is not None:
        value_text = str(res["valueInteger"])
        value = float(res["valueInteger"])
    concept = res.get("valueCodeableConcept")
    coded = _first_coding(concept)
    normalized, canonical_unit, converted = units.normalize(loinc.get("code"), value, unit)
    return {
        "loinc_code": loinc.get("code"),
        "display": (res.get("code") or {}).get("text") or loinc.get("display"),
        "category": category.get("code"),
        "effective_time": parse_datetime(effective or res.get("issued")),
        "value": normalized,
        "unit": canonical_unit,
        "value_original_text": value_text,
        "unit_original": unit,
        "unit_converted": converted,
        "value_code": coded.get("code"),
        "value_display": (concept or {}).get("text")
        or coded.get("display")
        or res.get("valueString"),
    }


def flatten_medication(res: dict) -> dict:
    rxnorm = _first_coding(res.get("medicationCodeableConcept"), "rxnorm")
    code = rxnorm.get("code")
    return {
        "rxnorm_code": code,
        "display": (res.get("medicationCodeableConcept") or {}).get("text")
        or rxnorm.get("display"),
        "status": res.get("status"),
        "intent": res.get("intent"),
        "authored_date": parse_date(res.get("authoredOn")),
        "is_antineoplastic": code in ANTINEOPLASTIC_RXNORM,
    }


def flatten_procedure(res: dict) -> dict:
    snomed = _first_coding(res.get("code"), "snomed")
    performed = res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start")
    return {
        "snomed_code": snomed.get("code"),
        "display": (res.get("code") or {}).get("text") or snomed.get("display"),
        "status": res.get("status"),
        "performed_date": parse_date(performed),
    }


def flatten_device_use(res: dict) -> dict:
    period = res.get("timingPeriod") or {}
    device = res.get("device") or {}
    return {
        "device_id": (device.get("identifier") or {}).get("value")
        or (device.get("reference") or "").split("/")[-1]
        or None,
        "period_start": parse_datetime(period.get("start")),
        "period_end": parse_datetime(period.get("end")),
        "status": res.get("status"),
    }


FLATTENERS = {
    "encounters": ("Encounter", flatten_encounter),
    "conditions": ("Condition", flatten_condition),
    "observations": ("Observation", flatten_observation),
    "medications": ("MedicationRequest", flatten_medication),
    "procedures": ("Procedure", flatten_procedure),
    "device_use": ("DeviceUseStatement", flatten_device_use),
}

# Latest delivery of each resource wins: re-sent bundles update rather than duplicate.
LATEST_RESOURCES_SQL = """
SELECT r.resource_json, r.patient_ref, r._source_sha256, r._source_locator
FROM bronze.fhir_resources r JOIN bronze.files f ON f.sha256 = r._source_sha256
WHERE r.resource_type = ? AND f.status = 'ingested'
QUALIFY row_number() OVER (PARTITION BY r.resource_type, r.resource_id
                           ORDER BY f.received_at DESC, f.path DESC) = 1
"""


def consent_by_patient(consents: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """Latest research Consent per patient ref: permitted, withdrawn after permit, date."""
    history: dict[str, list] = {}
    for resource_json, patient_ref in consents:
        res = fhir.loads(resource_json)
        if res.get("status") != "active" or not patient_ref:
            continue
        decision = (res.get("provision") or {}).get("type")
        history.setdefault(patient_ref, []).append((parse_date(res.get("dateTime")), decision))
    out = {}
    for ref, decisions in history.items():
        decisions.sort(key=lambda d: (d[0] is None, d[0]))
        latest_date, latest = decisions[-1]
        permitted_before = any(d == "permit" for _, d in decisions[:-1])
        out[ref] = {
            "research_consent": latest == "permit",
            "consent_opt_out": latest == "deny" and permitted_before,
            "consent_date": latest_date,
        }
    return out


def patient_rows(patients, consents, run_id: str, key: bytes | None = None) -> list[dict]:
    """Silver patient rows; one per research key (the latest delivery of that patient wins)."""
    consent = consent_by_patient(consents)
    rows: dict[str, dict] = {}
    for resource_json, patient_ref, sha, locator in patients:
        row = flatten_patient(fhir.loads(resource_json))
        # Without an MRN the source's own Patient id is the stable identifier to pseudonymize.
        identifier = row["mrn"] or f"fhir-patient:{row['fhir_patient_id']}"
        row["research_key"] = research_key(identifier, key)
        row.update(
            consent.get(patient_ref)
            or {"research_consent": False, "consent_opt_out": False, "consent_date": None}
        )
        row.update(_source_sha256=sha, _source_locator=locator, _run_id=run_id)
        rows.setdefault(row["research_key"], row)
    return list(rows.values())


def child_rows(table_name: str, resources, key_by_patient_ref: dict[str, str], run_id: str):
    """Silver rows of a patient-linked resource type, and the count of orphans left in bronze."""
    _, flatten = FLATTENERS[table_name]
    rows, orphans = [], 0
    for resource_json, patient_ref, sha, locator in resources:
        key = key_by_patient_ref.get(patient_ref)
        if key is None:
            orphans += 1
            continue
        row = flatten(fhir.loads(resource_json))
        row.update(research_key=key, _source_sha256=sha, _source_locator=locator, _run_id=run_id)
        rows.append(row)
    return rows, orphans


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
