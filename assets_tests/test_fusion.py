"""Outcome label from the EHR, and the fused patient features for any set of modalities."""

import duckdb
import numpy as np

from assets_tests.conftest import research_key
from multimodal_assets.lib.governance import catalog
from multimodal_assets.lib.ml import fusion
from multimodal_assets.lib.platform import warehouse
from multimodal_assets.lib.platform.tables import RESEARCH_KEY, Column, Table


def test_outcome_label_from_the_ehr_equals_the_generator_truth(pipeline):
    with pipeline.connect() as conn:
        outcomes = conn.execute(
            "SELECT research_key, progressed_or_died_12m FROM gold.clinical_outcomes"
        ).df()
    truth = pipeline.truth.assign(research_key=pipeline.truth.mrn.map(research_key))
    merged = truth.merge(outcomes, on="research_key")
    assert len(merged) == len(truth)
    assert (merged.label == merged.progressed_or_died_12m).all()
    assert 0.2 < merged.label.mean() < 0.8


def test_patient_features_have_one_row_and_every_flag_per_cohort_patient(pipeline):
    with pipeline.connect() as conn:
        fused = conn.execute("SELECT * FROM gold.patient_features").df()
        cohort = conn.execute(
            "SELECT count(*) FROM gold.clinical_features WHERE in_nsclc_cohort"
        ).fetchone()[0]
    assert len(fused) == cohort == len(pipeline.truth)
    assert fused.research_key.is_unique
    truth = pipeline.truth.assign(research_key=pipeline.truth.mrn.map(research_key))
    merged = truth.merge(fused, on="research_key", suffixes=("_truth", ""))
    assert merged.has_clinical.all()
    assert (merged.has_wearables == merged.has_wearables_truth).all()
    # Missing data is a value: wearable features are null exactly where the flag is false.
    assert merged.loc[~merged.has_wearables, "steps_mean_28d"].isna().all()
    assert merged.loc[merged.has_wearables, "steps_mean_28d"].notna().all()
    assert np.allclose(merged.hemoglobin_g_dl, merged.hemoglobin_g_dl_truth, atol=0.051)


def test_fused_declaration_takes_any_new_modality_without_code_changes():
    pathology = Table(
        layer="gold",
        name="pathology_features",
        modality="pathology",
        description="Pathology features for the test.",
        primary_key=("research_key",),
        columns=(
            RESEARCH_KEY,
            Column("has_pathology", "BOOLEAN", "Slides present.", "none", nullable=False),
            Column("tumor_cellularity", "DOUBLE", "Tumour cells share.", "sensitive", "hipaa"),
        ),
    )
    fused = fusion.fused_table((*catalog.ALL_TABLES, pathology))
    assert fused.lineage["tumor_cellularity"] == (("gold.pathology_features", "tumor_cellularity"),)
    assert fused.column("has_pathology").nullable is False
    assert fused.column("tumor_cellularity").classification == "sensitive"
    conn = duckdb.connect()
    for schema in warehouse.SCHEMAS:
        conn.execute(f"CREATE SCHEMA {schema}")
    for table in fusion.feature_tables((*catalog.ALL_TABLES, pathology)):
        conn.execute(table.ddl())
    conn.execute(
        "INSERT INTO gold.clinical_features (research_key, has_clinical, "
        "in_nsclc_cohort, research_consent) VALUES ('rk_a', TRUE, TRUE, TRUE), "
        "('rk_b', TRUE, TRUE, FALSE)"
    )
    conn.execute(
        "INSERT INTO gold.pathology_features (research_key, has_pathology, tumor_cellularity) VALUES ('rk_a', TRUE, 31.5)"
    )
    rows = conn.execute(
        fusion.fused_sql(fused).replace("$run_id", "'r'") + " ORDER BY 1"
    ).fetchall()
    names = fused.column_names
    got = [dict(zip(names, r, strict=True)) for r in rows]
    assert [
        (r["research_key"], r["has_pathology"], r["tumor_cellularity"], r["has_wearables"])
        for r in got
    ] == [("rk_a", True, 31.5, False), ("rk_b", False, None, False)]
