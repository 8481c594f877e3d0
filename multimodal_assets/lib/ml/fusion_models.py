"""Four fusion strategies over per-modality models, for any availability pattern.

Each modality's model is LightGBM or a regularized logistic regression, whichever ranks the
validation patients better (weak, additive signal such as the genomics flags is the logistic
model's; interactions LightGBM's).

- **late** (production default): a logistic combination of the available modalities' logits,
  fitted on the validation split, so it is calibrated and a missing modality adds nothing;
- **early**: one LightGBM on every feature concatenated, missing modalities as missing values;
- **intermediate**: each modality reduced to a small learned representation (PCA of its encoded
  features; zeros when absent), then one LightGBM on the merged representations and flags;
- **attention**: a per-patient softmax weighting of the available modalities' logits, whose
  scores depend on each model's confidence, fitted on the validation split.

`best_single` is the fallback the strategies are measured against: each patient scored by the
single-modality model with the best validation AUROC among the modalities they have.
Heavy libraries are imported inside the functions (the code location must load fast).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import training

if TYPE_CHECKING:
    import pandas as pd

STRATEGIES = ("late_fusion", "early_fusion", "intermediate_fusion", "attention_fusion")
PRODUCTION_STRATEGY = "late_fusion"
REPRESENTATION_DIM = 4  # per modality, for intermediate fusion
_ATTENTION_L2 = 0.01
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _frame(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Model input: strings become categories (LightGBM remaps them to the training categories)."""
    x = rows[columns].copy()
    for name in columns:
        if x[name].dtype == object or str(x[name].dtype).startswith("str"):
            x[name] = x[name].astype("category")
        elif x[name].dtype == bool:
            x[name] = x[name].astype(float)
    return x


def _lightgbm(seed: int):
    import lightgbm as lgb

    return lgb.LGBMClassifier(random_state=seed, **_LGBM)


class RegularizedLogistic:
    """An L2 logistic regression on a modality's features (median-imputed with missing
    indicators, scaled, categories one-hot), for modalities whose signal is weak and additive:
    at 10,000 patients LightGBM fitted noise on the genomics flags (test AUROC 0.500) where this
    model kept 0.541 of the 0.557 the generator's genomics term carries."""

    C = 0.1

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> RegularizedLogistic:
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        self.categorical = [c for c in frame.columns if str(frame[c].dtype) == "category"]
        numeric = [c for c in frame.columns if c not in self.categorical]
        encode = ColumnTransformer(
            [
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(
                            strategy="median", add_indicator=True, keep_empty_features=True
                        ),
                        StandardScaler(),
                    ),
                    numeric,
                ),
                ("categorical", OneHotEncoder(handle_unknown="ignore"), self.categorical),
            ]
        )
        self.model = make_pipeline(encode, LogisticRegression(C=self.C, max_iter=2000))
        self.model.fit(_categorical_as_text(frame, self.categorical), y)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(_categorical_as_text(frame, self.categorical))

    def portable(self) -> dict:
        """The fitted model as plain numbers (the LightGBM models' text dumps' counterpart):
        logit = intercept + Σ coefficient × encoded input, the encoding's parameters alongside."""
        encode, logistic = self.model[0], self.model[-1]
        imputer, scaler = encode.named_transformers_["numeric"]
        return {
            "model": "L2 logistic regression",
            "C": self.C,
            "inputs": encode.get_feature_names_out().tolist(),
            "coefficients": logistic.coef_[0].tolist(),
            "intercept": float(logistic.intercept_[0]),
            "numeric_medians": imputer.statistics_.tolist(),
            "scaled_means": scaler.mean_.tolist(),
            "scaled_scales": scaler.scale_.tolist(),
        }


def _modality_model(train_frame, y_train, check_frame, y_check, seed: int):
    """LightGBM or the regularized logistic model, whichever ranks the held-out patients
    better (LightGBM when they cannot tell: one outcome only); (model, its kind)."""
    boosted = _lightgbm(seed).fit(train_frame, y_train)
    if len(set(y_check.tolist())) < 2:
        return boosted, "lightgbm"
    linear = RegularizedLogistic().fit(train_frame, y_train)
    scores = {
        kind: training.auroc(y_check, model.predict_proba(check_frame)[:, 1])
        for kind, model in (("lightgbm", boosted), ("logistic", linear))
    }
    return (
        (linear, "logistic") if scores["logistic"] > scores["lightgbm"] else (boosted, "lightgbm")
    )


def _encoder(frame: pd.DataFrame, columns: list[str], seed: int):
    """Impute, scale and one-hot a modality's features, then reduce them with PCA."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in columns if c not in numeric]
    encode = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                categorical,
            ),
        ]
    )
    encoded = encode.fit_transform(_categorical_as_text(frame, categorical))
    pca = PCA(n_components=min(REPRESENTATION_DIM, *encoded.shape), random_state=seed)
    pca.fit(encoded)
    return encode, pca, categorical


def _categorical_as_text(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    for name in categorical:  # one-hot needs one type: missing becomes its own category
        frame[name] = frame[name].astype(object).where(frame[name].notna(), "missing").astype(str)
    return frame


def _attention_weights(params: np.ndarray, z: np.ndarray, has: np.ndarray):
    """Softmax over the available modalities of a_m + b_m·|logit_m|; zero where absent."""
    m = z.shape[1]
    a, b = params[1 + m : 1 + 2 * m], params[1 + 2 * m :]
    scores = a + b * np.abs(z)
    scores = np.where(has, scores, -np.inf)
    top = np.max(np.where(has, scores, -1e300), axis=1, keepdims=True)
    exp = np.where(has, np.exp(scores - top), 0.0)
    total = exp.sum(axis=1, keepdims=True)
    return np.divide(exp, total, out=np.zeros_like(exp), where=total > 0)


def _attention_logit(params: np.ndarray, z: np.ndarray, has: np.ndarray) -> np.ndarray:
    m = z.shape[1]
    alpha = params[1 : 1 + m]
    return params[0] + (_attention_weights(params, z, has) * alpha * z).sum(axis=1)


def _fit_attention(z: np.ndarray, has: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    m = z.shape[1]

    def loss(params):
        p = np.clip(_sigmoid(_attention_logit(params, z, has)), 1e-9, 1 - 1e-9)
        nll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
        return nll + _ATTENTION_L2 * np.sum((params[1:] - start[1:]) ** 2)

    start = np.concatenate([[0.0], np.ones(m), np.zeros(2 * m)])
    return minimize(loss, start, method="L-BFGS-B").x


@dataclass
class FusionModels:
    """Fitted per-modality models and every fusion strategy; scores any rows."""

    features: dict[str, list[str]]
    modality_models: dict[str, Any]
    validation_auroc: dict[str, float]
    late: Any
    early: Any
    early_columns: list[str]
    encoders: dict[str, Any]
    intermediate: Any
    attention: np.ndarray
    # Per modality, which model was kept: 'lightgbm' or 'logistic' (see _modality_model).
    model_kinds: dict[str, str] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.modality_models)

    def _has(self, rows: pd.DataFrame) -> np.ndarray:
        return np.column_stack([rows[f"has_{m}"].to_numpy(dtype=bool) for m in self.modalities])

    def modality_logits(self, rows: pd.DataFrame) -> np.ndarray:
        """Logit of each modality's model per patient (columns in `modalities`); NaN if absent."""
        z = np.full((len(rows), len(self.modalities)), np.nan)
        has = self._has(rows)
        for j, modality in enumerate(self.modalities):
            if has[:, j].any():
                frame = _frame(rows[has[:, j]], self.features[modality])
                z[has[:, j], j] = _logit(self.modality_models[modality].predict_proba(frame)[:, 1])
        return z

    def _late_inputs(self, z: np.ndarray, has: np.ndarray) -> np.ndarray:
        return np.column_stack([np.nan_to_num(z), has.astype(float)])

    def _representations(self, rows: pd.DataFrame) -> np.ndarray:
        has = self._has(rows)
        blocks = []
        for j, modality in enumerate(self.modalities):
            encode, pca, categorical = self.encoders[modality]
            block = np.zeros((len(rows), pca.n_components_))
            if has[:, j].any():
                frame = _categorical_as_text(rows[has[:, j]][self.features[modality]], categorical)
                block[has[:, j]] = pca.transform(encode.transform(frame))
            blocks.append(block)
        return np.column_stack([*blocks, has.astype(float)])

    def late_contributions(self, rows: pd.DataFrame) -> tuple[float, np.ndarray]:
        """Late fusion's logit = baseline + Σ per-modality contribution (0 when absent)."""
        z, has = self.modality_logits(rows), self._has(rows)
        m = len(self.modalities)
        coef = self.late.coef_[0]
        contributions = np.nan_to_num(z) * coef[:m] + has * coef[m:]
        return float(self.late.intercept_[0]), contributions

    def attention_weights(self, rows: pd.DataFrame) -> np.ndarray:
        z, has = self.modality_logits(rows), self._has(rows)
        return _attention_weights(self.attention, np.nan_to_num(z), has)

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Probability per strategy (and per modality, NaN where absent) for any rows."""
        import pandas as pd

        z, has = self.modality_logits(rows), self._has(rows)
        ranked = sorted(
            range(len(self.modalities)), key=lambda j: -self.validation_auroc[self.modalities[j]]
        )
        best = np.full(len(rows), np.nan)
        for j in reversed(ranked):  # the best available modality is written last
            best = np.where(has[:, j], z[:, j], best)
        out = {f"p_{m}": _sigmoid(z[:, j]) for j, m in enumerate(self.modalities)}
        out["best_single"] = _sigmoid(best)
        out["late_fusion"] = self.late.predict_proba(self._late_inputs(z, has))[:, 1]
        out["early_fusion"] = self.early.predict_proba(_frame(rows, self.early_columns))[:, 1]
        out["intermediate_fusion"] = self.intermediate.predict_proba(self._representations(rows))[
            :, 1
        ]
        out["attention_fusion"] = _sigmoid(_attention_logit(self.attention, np.nan_to_num(z), has))
        return pd.DataFrame(out, index=rows.index)


def fit(
    rows: pd.DataFrame, seed: int, min_patients: int = 20, dropout: float = 0.0
) -> FusionModels | None:
    """Train per-modality models on the train split and every fusion strategy on top.

    A modality trains only where it exists and with at least `min_patients` labelled training
    patients of both classes; with no such modality there is nothing to fuse (None).
    With `dropout`, the fusion strategies also learn from a copy of their rows in which each
    optional modality is removed from that share of the patients who have it (modality
    dropout); the per-modality models learn from the modality where it exists, as always."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from .fusion import ANCHOR

    train_rows = rows[rows.split == "train"]
    y_train = train_rows[training.LABEL].astype(int).to_numpy()
    check_rows = rows[rows.split == "validation"]
    y_check = check_rows[training.LABEL].astype(int).to_numpy()
    features, models, kinds = {}, {}, {}
    for modality, columns in training.modality_features().items():
        has = train_rows[f"has_{modality}"].to_numpy(dtype=bool)
        if has.sum() < min_patients or len(set(y_train[has].tolist())) < 2:
            continue  # too few patients with this modality to learn from
        checked = check_rows[f"has_{modality}"].to_numpy(dtype=bool)
        models[modality], kinds[modality] = _modality_model(
            _frame(train_rows[has], columns),
            y_train[has],
            _frame(check_rows[checked], columns),
            y_check[checked],
            seed,
        )
        features[modality] = columns
    if not models:
        return None
    if dropout > 0:
        anchor = ANCHOR.split(".")[1].removesuffix("_features")
        optional = [m for m in models if m != anchor]
        dropped = without_modalities(rows, optional, dropout, np.random.default_rng([seed, 7]))
        rows = pd.concat([rows, dropped], ignore_index=True)
    y = rows[training.LABEL].astype(int).to_numpy()
    train = (rows.split == "train").to_numpy()
    fit_on = (rows.split == "validation").to_numpy()
    if len(set(y[fit_on].tolist())) < 2:  # a tiny cohort: fit the combiners on train + validation
        fit_on = fit_on | train
    bundle = FusionModels(features, models, {}, None, None, [], {}, None, np.zeros(0), kinds)
    z, has = bundle.modality_logits(rows), bundle._has(rows)
    bundle.validation_auroc = {
        m: training.auroc(y[fit_on & has[:, j]], z[fit_on & has[:, j], j]) or 0.5
        for j, m in enumerate(bundle.modalities)
    }
    bundle.late = LogisticRegression(C=1.0, max_iter=1000).fit(
        bundle._late_inputs(z, has)[fit_on], y[fit_on]
    )
    bundle.early_columns = [f"has_{m}" for m in models] + [c for m in models for c in features[m]]
    bundle.early = _lightgbm(seed).fit(_frame(rows[train], bundle.early_columns), y[train])
    bundle.encoders = {
        m: _encoder(rows[train & has[:, j]][features[m]], features[m], seed)
        for j, m in enumerate(models)
    }
    bundle.intermediate = _lightgbm(seed).fit(bundle._representations(rows)[train], y[train])
    bundle.attention = _fit_attention(np.nan_to_num(z[fit_on]), has[fit_on], y[fit_on])
    return bundle


def without_modalities(
    rows: pd.DataFrame, modalities: list[str], share: float, rng: np.random.Generator
) -> pd.DataFrame:
    """A copy of `rows` where each listed modality is removed, independently, from `share` of
    the patients who have it: flag false and its features missing."""
    masked = rows.copy()
    features = training.modality_features()
    for modality in modalities:
        has = np.flatnonzero(masked[f"has_{modality}"].to_numpy(dtype=bool))
        drop = masked.index[rng.choice(has, size=round(share * len(has)), replace=False)]
        masked.loc[drop, f"has_{modality}"] = False
        masked.loc[drop, features[modality]] = None
    return masked
