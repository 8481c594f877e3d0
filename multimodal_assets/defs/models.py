"""Model assets: the reproducible training set and the per-modality and late-fusion models."""

import json
from importlib.metadata import version

import dagster as dg

from multimodal_assets.lib import config, ml
from multimodal_assets.lib.pseudonym import research_key

from .resources import OWNERS, WarehouseResource

SEED = 20261128
_TAGS = {"modality": "fusion", "layer": "ml", "contains_phi": "false"}


@dg.asset(
    key=["ml", "training_set"],
    group_name="models",
    kinds={"parquet"},
    owners=OWNERS,
    tags=_TAGS,
    deps=[["fusion", "patient_features"], ["clinical", "clinical_outcomes"]],
    automation_condition=dg.AutomationCondition.eager(),
    pool="warehouse",
)
def training_set(lakehouse: WarehouseResource) -> dg.MaterializeResult:
    """Immutable snapshot of fused features and labels, split by a hash of the research key."""
    with lakehouse.get_connection() as conn:
        snapshot = ml.build_training_set(
            conn, config.data_dir() / "ml" / "training_sets", version("multimodal_assets"), SEED
        )
    counts = snapshot.manifest["counts"]
    return dg.MaterializeResult(
        metadata={
            "version": snapshot.version,
            "dagster/row_count": sum(counts.values()),
            **{f"rows_{k}": v for k, v in counts.items()},
            **{f"label_rate_{k}": v for k, v in snapshot.manifest["label_rate"].items()},
            "features": ", ".join(
                c for cols in snapshot.manifest["features"].values() for c in cols
            ),
        }
    )


@dg.asset(
    key=["ml", "risk_models"],
    group_name="models",
    kinds={"lightgbm", "python"},
    owners=OWNERS,
    tags=_TAGS,
    deps=[training_set],
    automation_condition=dg.AutomationCondition.eager(),
)
def risk_models(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """One LightGBM per modality and their calibrated late fusion, evaluated on the test split."""
    import pandas as pd

    root = config.data_dir() / "ml" / "training_sets"
    latest = max(root.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    rows = pd.read_parquet(latest.with_name("rows.parquet"))
    trained = ml.train(rows, SEED)
    if not trained.modality_models:
        return dg.MaterializeResult(
            metadata={
                "training_set": latest.parent.name,
                "modalities": "none",
                "note": "too few labelled patients to train any model",
            }
        )
    version_dir = config.data_dir() / "ml" / "models" / latest.parent.name
    version_dir.mkdir(parents=True, exist_ok=True)
    for modality, model in trained.modality_models.items():
        model.booster_.save_model(str(version_dir / f"{modality}.txt"))
    (version_dir / "metrics.json").write_text(json.dumps(trained.metrics, indent=2))
    metadata = {
        "training_set": latest.parent.name,
        "modalities": ", ".join(trained.modality_models),
    }
    for name, values in trained.metrics.items():
        metadata.update({f"{name}_{k}": v for k, v in values.items() if v is not None})
    truth_file = config.truth_dir() / "patients.parquet"
    if truth_file.exists():  # only synthetic cohorts have a ceiling to compare with
        truth = pd.read_parquet(truth_file, columns=["mrn", "true_probability", "label"])
        truth["research_key"] = truth.mrn.map(research_key)
        oracle = ml.oracle_auroc(trained.predictions, truth.drop(columns="mrn"))
        if oracle is not None:
            metadata["oracle_auroc"] = oracle
    context.log.info(f"models trained on training set {latest.parent.name}")
    return dg.MaterializeResult(metadata=metadata)


assets = [training_set, risk_models]
