"""Fusion assets: one governed row per cohort patient across every modality."""

from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.ml import fusion

from .governed import governed_table_asset, sql_build

# The fused table's column lineage is its design (one source column each); its SQL is
# generated from that lineage, so the lineage stays declared rather than derived.
patient_features = governed_table_asset(
    catalog.PATIENT_FEATURES,
    build=sql_build(catalog.PATIENT_FEATURES, fusion.fused_sql(catalog.PATIENT_FEATURES)),
    kinds={"duckdb", "sql"},
)

assets = [patient_features]
