"""Clinical silver tables: patients, encounters, conditions, observations, medications, procedures, device use."""

from __future__ import annotations

from ..platform.tables import Column, Table, provenance_columns
from .bronze import BRONZE
from .vocabulary import RK, SEXES, STAGE_GROUPS


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
        description=description,
        primary_key=pk,
        columns=(RK, *columns, *provenance_columns(locator, locator_class)),
        lineage=lineage,
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


SILVER_TABLES = (
    PATIENTS,
    ENCOUNTERS,
    CONDITIONS,
    OBSERVATIONS,
    MEDICATIONS,
    PROCEDURES,
    DEVICE_USE,
)
