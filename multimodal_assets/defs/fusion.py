"""Fusion assets: one governed row per cohort patient across every modality."""

from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.ml import fusion

from .governed import governed_table_asset

patient_features = governed_table_asset(
    catalog.PATIENT_FEATURES,
    sql=fusion.fused_sql(catalog.PATIENT_FEATURES),
    kinds={"duckdb", "sql"},
)

assets = [patient_features]
