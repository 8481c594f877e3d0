"""Training snapshots and models: reproducible, leak-free splits; predictions for everyone."""

import pandas as pd

from multimodal_assets.lib import catalog, ml


def _snapshot(pipeline):
    (manifest,) = (pipeline.data_dir / "ml" / "training_sets").glob("*/manifest.json")
    return manifest.parent, pd.read_parquet(manifest.with_name("rows.parquet"))


def test_training_set_is_split_by_patient_and_rebuilds_byte_identically(pipeline, tmp_path):
    folder, rows = _snapshot(pipeline)
    assert rows.research_key.is_unique
    assert set(rows.split) == {"train", "validation", "test"}
    assert all(ml.split_of(k) == s for k, s in zip(rows.research_key, rows.split, strict=True))
    with pipeline.connect() as conn:
        again = ml.build_training_set(conn, tmp_path, "same-code", 1)
    assert again.version == folder.name
    assert again.path.read_bytes() == (folder / "rows.parquet").read_bytes()


def test_no_identifier_or_date_is_a_predictor():
    features = [c for cols in ml.modality_features().values() for c in cols]
    fused = catalog.PATIENT_FEATURES
    assert features and "race" not in features and "index_date" not in features
    assert all(fused.column(c).classification != "phi" for c in features)
    assert set(ml.modality_features()) == {"clinical", "wearables"}


def test_late_fusion_scores_every_patient_whatever_is_missing(pipeline):
    _, rows = _snapshot(pipeline)
    # The test cohort is small: let each modality train from a few patients.
    trained = ml.train(rows, seed=3, min_patients=5)
    assert trained.predictions.late_fusion.notna().all()
    without = ~rows.has_wearables.to_numpy()
    assert without.any() and trained.predictions.p_wearables[without].isna().all()
    for name, values in trained.metrics.items():
        for key in ("auroc", "auprc", "brier"):
            assert values[key] is None or 0.0 <= values[key] <= 1.0, (name, key)


def test_model_metrics_and_oracle_are_materialized(pipeline):
    (event,) = [
        m
        for m in pipeline.result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "ml/risk_models"
    ]
    metadata = event.materialization.metadata
    assert 0.5 <= metadata["oracle_auroc"].value <= 1.0
    assert metadata["late_fusion_n"].value > 0
    assert (
        pipeline.data_dir / "ml" / "models" / metadata["training_set"].value / "clinical.txt"
    ).exists()
