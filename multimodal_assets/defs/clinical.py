"""Clinical (FHIR R4) assets: landed bundles → bronze resources → silver tables → gold features."""

import dagster as dg

from multimodal_assets.lib import clinical, config, fhir, ingest, warehouse
from multimodal_assets.lib.clinical import (
    CLINICAL_FEATURES,
    CONDITIONS,
    ENCOUNTERS,
    FHIR_RESOURCES,
    MEDICATIONS,
    OBSERVATIONS,
    PATIENTS,
    PROCEDURES,
)

from .governed import (
    asset_spec_kwargs,
    governed_table_asset,
    record_materialization,
    table_metadata,
)
from .resources import WarehouseResource


@dg.asset(
    **asset_spec_kwargs(FHIR_RESOURCES, {"duckdb", "python", "json"}),
    metadata=table_metadata(FHIR_RESOURCES),
)
def fhir_resources(
    context: dg.AssetExecutionContext, lakehouse: WarehouseResource
) -> dg.MaterializeResult:
    """Raw FHIR R4 resources from every landed clinical file; bad files are quarantined."""
    landed = ingest.scan_landing(config.landing_dir(), "clinical")
    with lakehouse.get_connection() as conn:
        new = ingest.unregistered(conn, landed)
        summary = ingest.ingest(
            conn, "clinical", new, fhir.parse_fhir_file, FHIR_RESOURCES, context.run_id
        )
        total = warehouse.row_count(conn, FHIR_RESOURCES.fqn)
        record_materialization(
            conn,
            lakehouse.database,
            FHIR_RESOURCES,
            context.run_id,
            summary.records,
            True,
            "appended new landed files",
        )
    context.log.info(
        f"clinical landing: {summary.new_files} new files, {summary.ingested} ingested, "
        f"{summary.quarantined} quarantined, {summary.duplicates} duplicates"
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(FHIR_RESOURCES),
            "dagster/row_count": total,
            "landed_files": len(landed),
            **summary.as_metadata(),
        }
    )


def _build_patients(conn, run_id: str) -> dict:
    patients = conn.execute(clinical.LATEST_RESOURCES_SQL, ["Patient"]).fetchall()
    consents = [
        (r[0], r[1]) for r in conn.execute(clinical.LATEST_RESOURCES_SQL, ["Consent"]).fetchall()
    ]
    rows = clinical.patient_rows(patients, consents, run_id)
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
)
child_tables = [
    governed_table_asset(
        table,
        build=_child_builder(table.name),
    )
    for table in (ENCOUNTERS, CONDITIONS, OBSERVATIONS, MEDICATIONS, PROCEDURES)
]


def _build_clinical_features(conn, run_id: str) -> dict:
    warehouse.stage(conn, CLINICAL_FEATURES, clinical.CLINICAL_FEATURES_SQL, {"run_id": run_id})
    in_cohort = conn.execute(
        f"SELECT count(*) FILTER (in_nsclc_cohort) FROM {warehouse.staging_name(CLINICAL_FEATURES)}"
    ).fetchone()[0]
    return {"patients_in_nsclc_cohort": in_cohort}


clinical_features = governed_table_asset(
    CLINICAL_FEATURES,
    build=_build_clinical_features,
    kinds={"duckdb", "sql"},
)

assets = [fhir_resources, patients, *child_tables, clinical_features]
