"""Clinical (FHIR R4) modality: table declarations, resource flatteners and the gold feature SQL.

Modules: `vocabulary` (the codes the features rely on), `bronze` (the resource table), `silver`
(silver table declarations), `flatten` (one FHIR resource into one silver row), `gold` (gold
features and outcomes and their SQL).
"""

from .bronze import BRONZE, FHIR_RESOURCES
from .flatten import (
    FLATTENERS,
    LATEST_RESOURCES_SQL,
    child_rows,
    consent_by_patient,
    flatten_condition,
    flatten_device_use,
    flatten_encounter,
    flatten_medication,
    flatten_observation,
    flatten_patient,
    flatten_procedure,
    patient_rows,
    stage_group_of,
)
from .gold import (
    CLINICAL_FEATURES,
    CLINICAL_OUTCOMES,
    OUTCOME_HORIZON_DAYS,
)
from .silver import (
    CONDITIONS,
    DEVICE_USE,
    ENCOUNTERS,
    MEDICATIONS,
    OBSERVATIONS,
    PATIENTS,
    PROCEDURES,
    SILVER_TABLES,
)
from .vocabulary import (
    ANTINEOPLASTIC_RXNORM,
    HISTOLOGIES,
    HISTOLOGY_BY_SNOMED,
    LOINC,
    RK,
    SEXES,
    SMOKING_BY_SNOMED,
    STAGE_GROUPS,
)

TABLES = (FHIR_RESOURCES, *SILVER_TABLES, CLINICAL_FEATURES, CLINICAL_OUTCOMES)

__all__ = [
    "ANTINEOPLASTIC_RXNORM",
    "BRONZE",
    "CLINICAL_FEATURES",
    "CLINICAL_OUTCOMES",
    "CONDITIONS",
    "DEVICE_USE",
    "ENCOUNTERS",
    "FHIR_RESOURCES",
    "FLATTENERS",
    "HISTOLOGIES",
    "HISTOLOGY_BY_SNOMED",
    "LATEST_RESOURCES_SQL",
    "LOINC",
    "MEDICATIONS",
    "OBSERVATIONS",
    "OUTCOME_HORIZON_DAYS",
    "PATIENTS",
    "PROCEDURES",
    "RK",
    "SEXES",
    "SILVER_TABLES",
    "SMOKING_BY_SNOMED",
    "STAGE_GROUPS",
    "TABLES",
    "child_rows",
    "consent_by_patient",
    "flatten_condition",
    "flatten_device_use",
    "flatten_encounter",
    "flatten_medication",
    "flatten_observation",
    "flatten_patient",
    "flatten_procedure",
    "patient_rows",
    "stage_group_of",
]
