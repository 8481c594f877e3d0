"""Clinical (FHIR R4) assets: landed bundles → bronze resources → silver tables → gold features."""

from multimodal_assets.lib import clinical
from multimodal_assets.lib.clinical import (
    CLINICAL_FEATURES,
    CLINICAL_OUTCOMES,
    FHIR_RESOURCES,
    PATIENTS,
    fhir,
)
from multimodal_assets.lib.platform import warehouse

from .governed import bronze_ingest_asset, governed_table_asset

fhir_resources = bronze_ingest_asset(
    FHIR_RESOURCES, fhir.parse_fhir_file, kinds={"duckdb", "python", "json"}
)


def _build_patients(conn, run_id: str, key: bytes) -> dict:
    patients = conn.execute(clinical.LATEST_RESOURCES_SQL, ["Patient"]).fetchall()
    consents = [
        (r[0], r[1]) for r in conn.execute(clinical.LATEST_RESOURCES_SQL, ["Consent"]).fetchall()
    ]
    rows = clinical.patient_rows(patients, consents, run_id, key)
    warehouse.stage_rows(conn, PATIENTS, rows)
    return {
        "patient_resources": len(patients),
        "patients_without_mrn": sum(1 for r in rows if r["mrn"] is None),
    }


def _child_builder(table_name: str):
    resource_type, _ = clinical.FLATTENERS[table_name]
    table = next(t for t in clinical.SILVER_TABLES if t.name == table_name)

    def build(conn, run_id: str) -> dict:
        keys = dict(
            conn.execute("SELECT fhir_patient_id, research_key FROM silver.patients").fetchall()
        )
        resources = conn.execute(clinical.LATEST_RESOURCES_SQL, [resource_type]).fetchall()
        rows, orphans = clinical.child_rows(table_name, resources, keys, run_id)
        warehouse.stage_rows(conn, table, rows)
        # Orphans stay in bronze; reporting the count is what keeps the drop from being silent.
        return {"source_resources": len(resources), "orphan_resources_not_linked": orphans}

    return build


patients = governed_table_asset(
    PATIENTS,
    build=_build_patients,
    pseudonymizes=True,
)
child_tables = [
    governed_table_asset(
        table,
        build=_child_builder(table.name),
    )
    for table in clinical.SILVER_TABLES
    if table is not PATIENTS
]


def _build_clinical_features(conn, run_id: str) -> dict:
    warehouse.stage(conn, CLINICAL_FEATURES, CLINICAL_FEATURES.build_sql, {"run_id": run_id})
    in_cohort = conn.execute(
        f"SELECT count(*) FILTER (in_nsclc_cohort) FROM {warehouse.staging_name(CLINICAL_FEATURES)}"
    ).fetchone()[0]
    return {"patients_in_nsclc_cohort": in_cohort}


clinical_features = governed_table_asset(
    CLINICAL_FEATURES,
    build=_build_clinical_features,
    kinds={"duckdb", "sql"},
)

clinical_outcomes = governed_table_asset(
    CLINICAL_OUTCOMES,
    kinds={"duckdb", "sql"},
)

assets = [fhir_resources, patients, *child_tables, clinical_features, clinical_outcomes]
