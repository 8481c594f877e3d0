"""Reproducible training sets, per-modality LightGBM models and their late fusion.

A training set is an immutable Parquet snapshot named by the hash of its bytes, with a manifest
of where it came from; patients are split by a hash of their research key, so a patient never
changes split and no patient is in two. LightGBM and scikit-learn are imported inside the
functions that use them (the code location must load fast).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import catalog, fusion

if TYPE_CHECKING:  # pandas loads on first use: the code location imports this module
    import pandas as pd

LABEL = "label"
SPLITS = (("train", 70), ("validation", 85), ("test", 100))  # cumulative hash buckets of 100
# Columns that are not predictors: identifiers, dates, cohort bookkeeping, and race (kept
# only for subgroup evaluation, never as an input).
_NOT_FEATURES = {"research_key", "_run_id", "in_nsclc_cohort", "research_consent", "race"}
_LGBM = dict(
    n_estimators=200,
    learning_rate=0.05,
    num_leaves=15,
    min_child_samples=10,
    subsample=0.8,
    subsample_freq=1,
    colsample_bytree=0.8,
    verbose=-1,
)


def split_of(research_key: str) -> str:
    bucket = int(hashlib.sha256(research_key.encode()).hexdigest()[:8], 16) % 100
    return next(name for name, upper in SPLITS if bucket < upper)


def modality_features() -> dict[str, list[str]]:
    """Predictor columns per modality, from the fused declaration (phi columns never enter)."""
    fused = catalog.PATIENT_FEATURES
    out: dict[str, list[str]] = {}
    for column in fused.columns:
        if column.name in _NOT_FEATURES or column.classification == "phi":
            continue
        ((source, _),) = fused.lineage[column.name]
        modality = catalog.table(source).modality
        if column.name != f"has_{modality}":
            out.setdefault(modality, []).append(column.name)
    return out


def training_sql() -> str:
    columns = [
        "f.research_key",
        *[
            f'f."{c}"'
            for c in (
                [f"has_{t.modality}" for t in fusion.feature_tables(catalog.ALL_TABLES)]
                + [c for cols in modality_features().values() for c in cols]
                + ["race"]
            )
        ],
    ]
    return (
        f"SELECT {', '.join(columns)}, o.progressed_or_died_12m AS {LABEL} "
        "FROM gold.patient_features f JOIN gold.clinical_outcomes o USING (research_key) "
        "ORDER BY f.research_key"
    )


@dataclass(frozen=True)
class TrainingSet:
    version: str
    path: Path
    manifest: dict


def build_training_set(conn, root: Path, code_version: str, seed: int) -> TrainingSet:
    """Snapshot the fused features and labels; the same data gives the same bytes and version."""
    frame = conn.sql(training_sql()).df()
    frame["split"] = frame.research_key.map(split_of)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    data = buffer.getvalue()
    version = hashlib.sha256(data).hexdigest()[:16]
    folder = root / version
    sources = conn.execute(
        "SELECT count(*), sha256(string_agg(sha256, ',' ORDER BY sha256)) FROM bronze.files "
        "WHERE status = 'ingested'"
    ).fetchall()[0]
    manifest = {
        "version": version,
        "rows_sha256": hashlib.sha256(data).hexdigest(),
        "source": {
            "tables": ["gold.patient_features", "gold.clinical_outcomes"],
            "ingested_files": sources[0],
            "ingested_files_digest": sources[1],
        },
        "code_version": code_version,
        "seed": seed,
        "split": "sha256(research_key) mod 100: <70 train, <85 validation, else test",
        "counts": frame.split.value_counts().sort_index().to_dict(),
        "label_rate": frame.groupby("split")[LABEL].mean().round(4).to_dict(),
        "features": modality_features(),
    }
    if not (folder / "rows.parquet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rows.parquet").write_bytes(data)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return TrainingSet(version, folder / "rows.parquet", manifest)


def _auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(set(y.tolist())) == 2 else None


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    from sklearn.metrics import average_precision_score, brier_score_loss

    if len(y) == 0:
        return {"n": 0, "auroc": None, "auprc": None, "brier": None}
    both = len(set(y.tolist())) == 2
    return {
        "n": int(len(y)),
        "auroc": _auroc(y, p),
        "auprc": float(average_precision_score(y, p)) if both else None,
        "brier": float(brier_score_loss(y, p)),
    }


def _frame(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    x = rows[columns].copy()
    for name in columns:
        if x[name].dtype == object or str(x[name].dtype).startswith("str"):
            x[name] = x[name].astype("category")
    return x


@dataclass
class Trained:
    modality_models: dict
    fusion_model: object
    predictions: pd.DataFrame
    metrics: dict


def train(rows: pd.DataFrame, seed: int, min_patients: int = 20) -> Trained:
    """One LightGBM per modality (trained where it exists) and a calibrated late fusion.

    With too few labelled patients for any modality nothing is trained (empty result)."""
    import lightgbm as lgb
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    features = modality_features()
    y = rows[LABEL].astype(int).to_numpy()
    logits, models = {}, {}
    for modality, columns in features.items():
        has = rows[f"has_{modality}"].to_numpy(dtype=bool)
        train_mask = has & (rows.split == "train").to_numpy()
        if train_mask.sum() < min_patients or len(set(y[train_mask].tolist())) < 2:
            continue  # too few patients with this modality to learn from
        model = lgb.LGBMClassifier(random_state=seed, **_LGBM)
        model.fit(_frame(rows[train_mask], columns), y[train_mask])
        p = np.full(len(rows), np.nan)
        p[has] = model.predict_proba(_frame(rows[has], columns))[:, 1]
        logits[modality] = np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
        models[modality] = model
    if not models:
        return Trained({}, None, pd.DataFrame(), {})
    # Late fusion: a logistic combination of the available modalities' logits (a missing one
    # contributes 0 and its flag), fitted on the validation split so it is also calibrated.
    stack = np.column_stack(
        [np.nan_to_num(logits[m]) for m in models]
        + [rows[f"has_{m}"].to_numpy(dtype=float) for m in models]
    )
    fit_on = (rows.split == "validation").to_numpy()
    if len(set(y[fit_on].tolist())) < 2:  # a tiny cohort: calibrate on train + validation
        fit_on = fit_on | (rows.split == "train").to_numpy()
    fusion_model = LogisticRegression(C=1.0, max_iter=1000)
    fusion_model.fit(stack[fit_on], y[fit_on])
    fused = fusion_model.predict_proba(stack)[:, 1]
    predictions = pd.DataFrame(
        {
            "research_key": rows.research_key,
            "split": rows.split,
            "late_fusion": fused,
            **{f"p_{m}": 1 / (1 + np.exp(-logits[m])) for m in models},
        }
    )
    test = (rows.split == "test").to_numpy()
    metrics = {"late_fusion": _metrics(y[test], fused[test])}
    for m in models:
        available = test & ~np.isnan(logits[m])
        metrics[m] = _metrics(y[available], predictions[f"p_{m}"].to_numpy()[available])
    multi = test & (rows[[f"has_{m}" for m in models]].sum(axis=1).to_numpy() >= 2)
    metrics["late_fusion_on_two_or_more"] = _metrics(y[multi], fused[multi])
    return Trained(models, fusion_model, predictions, metrics)


def oracle_auroc(predictions: pd.DataFrame, truth: pd.DataFrame) -> float | None:
    """AUROC of the generator's true probabilities on the same test patients (the ceiling);
    `truth` has research_key, true_probability and label."""
    test = predictions[predictions.split == "test"].merge(truth, on="research_key")
    return _auroc(test.label.astype(int).to_numpy(), test.true_probability.to_numpy())
