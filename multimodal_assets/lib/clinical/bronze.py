"""Clinical bronze: one row per FHIR R4 resource, kept exactly as delivered."""

from __future__ import annotations

from ..platform.tables import Column, Table, provenance_columns

BRONZE = "bronze.fhir_resources"


FHIR_RESOURCES = Table(
    layer="bronze",
    name="fhir_resources",
    modality="clinical",
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
