"""Scoring every cohort patient with the production model, and the drift of the scored
population against the one that model was trained on.

The scored population drifts when its newest patients differ from the training patients who came
before them: the current population is the patients indexed in the last `WINDOW_DAYS` of the
data, the reference is the model's training split indexed before that window (no overlap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import drift
from .fusion_models import PRODUCTION_STRATEGY, FusionModels

if TYPE_CHECKING:
    import pandas as pd

    from ..platform.tables import Table

WINDOW_DAYS = 365
MIN_POPULATION = 20  # fewer patients than this on either side: drift is not assessed


def score_frame(
    models: FusionModels, rows: pd.DataFrame, table: Table, model_version: str, training_set: str
) -> pd.DataFrame:
    """Rows of `gold.risk_scores` (without `_run_id`) for the given fused feature rows."""
    import pandas as pd

    predicted = models.predict(rows)
    baseline, contributions = models.late_contributions(rows)
    flags = [c.removeprefix("contribution_") for c in table.column_names if c.startswith("contr")]
    used = np.array(
        [
            "+".join(m for m in flags if row[f"has_{m}"])
            for row in rows[[f"has_{m}" for m in flags]].to_dict("records")
        ]
    )
    out = pd.DataFrame(
        {
            "research_key": rows.research_key.to_numpy(),
            "risk_score": predicted[PRODUCTION_STRATEGY].to_numpy(),
            "strategy": PRODUCTION_STRATEGY,
            "model_version": model_version,
            "training_set": training_set,
            "modalities_used": used,
            "baseline_logit": baseline,
        }
    )
    for modality in flags:  # a modality the model could not learn contributes nothing known
        j = models.modalities.index(modality) if modality in models.modalities else None
        out[f"contribution_{modality}"] = contributions[:, j] if j is not None else None
    return out


def drift_populations(
    index_dates: pd.DataFrame, training: pd.DataFrame, scoring: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reference, current): training-split patients indexed before the newest window, and the
    scored patients indexed within it. `index_dates` has research_key and index_date."""
    import pandas as pd

    dates = pd.to_datetime(index_dates.set_index("research_key").index_date)
    start = dates.max() - pd.Timedelta(days=WINDOW_DAYS)
    recent = set(dates.index[dates >= start])
    earlier = set(dates.index[dates < start])
    reference = training[(training.split == "train") & training.research_key.isin(earlier)]
    return reference, scoring[scoring.research_key.isin(recent)]


def population_drift(
    models: FusionModels, reference: pd.DataFrame, current: pd.DataFrame
) -> drift.DriftReport | None:
    """Drift of every availability flag, model input and the production prediction; None when
    either population is too small to compare."""
    if min(len(reference), len(current)) < MIN_POPULATION:
        return None
    flags = [c for c in current.columns if c.startswith("has_")]
    inputs = [c for m in models.modalities for c in models.features[m]]
    reference = reference.assign(prediction=models.predict(reference)[PRODUCTION_STRATEGY])
    current = current.assign(prediction=models.predict(current)[PRODUCTION_STRATEGY])
    return drift.drift_report(reference, current, [*flags, *inputs, "prediction"])
