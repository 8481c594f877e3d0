"""Evaluation of the fusion strategies on the test split: overall metrics and calibration, by
availability pattern, degradation when modalities go missing, subgroup gaps with bootstrap
confidence intervals, per-modality contributions, and the oracle ceiling; written as a report
(Markdown with plots) a person can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import training
from .fusion import ANCHOR
from .fusion_models import STRATEGIES, FusionModels, without_modalities

if TYPE_CHECKING:
    import pandas as pd

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
REPEATS = 10  # random removals per point of a degradation curve
BOOTSTRAP = 300
MIN_SUBGROUP = 10  # patients with both outcomes; smaller groups are listed, not compared
COMPARED = (*STRATEGIES, "best_single")
ALL_OPTIONAL = "all optional"
MIN_GAIN = 0.01  # AUROC over the anchor-only model below which "gain kept" is not reported
SUBGROUPS = {"sex": "sex", "age_band": "age band", "race": "race/ancestry", "site": "site"}


def anchor_modality() -> str:
    return ANCHOR.split(".")[1].removesuffix("_features")


@dataclass
class Evaluation:
    summary: dict = field(default_factory=dict)
    strategies: list[dict] = field(default_factory=list)
    patterns: list[dict] = field(default_factory=list)
    degradation: list[dict] = field(default_factory=list)
    subgroups: list[dict] = field(default_factory=list)
    calibration: dict[str, list[dict]] = field(default_factory=dict)
    contributions: dict[str, list[float]] = field(default_factory=dict)
    roc: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)


def _age_band(age) -> str:
    return "<55" if age < 55 else "55-64" if age < 65 else "65-74" if age < 75 else "75+"


def _pattern(rows: pd.DataFrame, modalities: list[str]) -> np.ndarray:
    flags = {m: rows[f"has_{m}"].to_numpy(dtype=bool) for m in modalities}
    return np.array(
        ["+".join(m for m in modalities if flags[m][i]) or "none" for i in range(len(rows))]
    )


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[list[float], list[float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return fpr.round(4).tolist(), tpr.round(4).tolist()


def _subgroups(test: pd.DataFrame, y: np.ndarray, p: np.ndarray, rng) -> tuple[list, dict]:
    """AUROC with a bootstrap 95% CI per subgroup; per attribute the gap between its best and
    worst comparable groups, with a bootstrap CI of that gap."""
    attributes = {
        "sex": test.sex.to_numpy(dtype=object),
        "age_band": np.array([_age_band(a) for a in test.age_at_index]),
        "race": test.race.to_numpy(dtype=object),
        "site": test.site.to_numpy(dtype=object),
    }
    samples = [rng.integers(0, len(y), len(y)) for _ in range(BOOTSTRAP)]
    rows, gaps = [], {}
    for attribute, values in attributes.items():
        point = {}
        for group in sorted({str(v) for v in values}):
            members = values.astype(str) == group
            n_pos, n_neg = int(y[members].sum()), int((~y[members]).sum())
            value = training.auroc(y[members], p[members])
            comparable = min(n_pos, n_neg) > 0 and members.sum() >= MIN_SUBGROUP
            boot = [
                training.auroc(y[s][members[s]], p[s][members[s]]) for s in samples if comparable
            ]
            boot = [b for b in boot if b is not None]
            rows.append(
                {
                    "attribute": SUBGROUPS[attribute],
                    "group": group,
                    "n": int(members.sum()),
                    "events": n_pos,
                    "auroc": value,
                    "ci_low": float(np.percentile(boot, 2.5)) if boot else None,
                    "ci_high": float(np.percentile(boot, 97.5)) if boot else None,
                    "compared": comparable,
                }
            )
            if comparable and value is not None:
                point[group] = value
        if len(point) >= 2:
            best, worst = max(point, key=point.get), min(point, key=point.get)
            diffs = []
            for s in samples:
                a = training.auroc(y[s][values[s] == best], p[s][values[s] == best])
                b = training.auroc(y[s][values[s] == worst], p[s][values[s] == worst])
                if a is not None and b is not None:
                    diffs.append(a - b)
            gaps[SUBGROUPS[attribute]] = {
                "best": best,
                "worst": worst,
                "gap": point[best] - point[worst],
                "ci_low": float(np.percentile(diffs, 2.5)) if diffs else None,
                "ci_high": float(np.percentile(diffs, 97.5)) if diffs else None,
            }
    return rows, gaps


def evaluate(
    models: FusionModels, rows: pd.DataFrame, seed: int, truth: pd.DataFrame | None = None
) -> Evaluation:
    """Evaluate every strategy on the test split of a training snapshot.

    `truth` (research_key, true_probability), when the cohort is synthetic, gives the oracle."""
    rng = np.random.default_rng(seed)
    test = rows[rows.split == "test"].reset_index(drop=True)
    y = test[training.LABEL].to_numpy(dtype=bool)
    predicted = models.predict(test)
    result = Evaluation()
    anchor = anchor_modality()

    for name in [*COMPARED, *[f"p_{m}" for m in models.modalities]]:
        p = predicted[name].to_numpy()
        available = ~np.isnan(p)
        result.strategies.append({"model": name, **training.metrics(y[available], p[available])})
        if name in COMPARED and len(set(y.tolist())) == 2:
            result.calibration[name] = training.calibration_bins(y.astype(int), p)
            result.roc[name] = _roc_points(y, p)
    if truth is not None:
        oracle = test[["research_key"]].merge(truth, on="research_key", how="left")
        p = oracle.true_probability.to_numpy(dtype=float)
        result.strategies.append({"model": "oracle", **training.metrics(y, p)})
        if len(set(y.tolist())) == 2:
            result.roc["oracle"] = _roc_points(y, p)

    patterns = _pattern(test, models.modalities)
    for pattern in sorted(set(patterns)):
        members = patterns == pattern
        for name in COMPARED:
            p = predicted[name].to_numpy()[members]
            result.patterns.append(
                {"pattern": pattern, "model": name, **training.metrics(y[members], p)}
            )

    optional = [m for m in models.modalities if m != anchor]
    removal_sets = {m: [m] for m in optional} | (
        {ALL_OPTIONAL: optional} if len(optional) > 1 else {}
    )
    anchor_only = (
        training.auroc(y, predicted[f"p_{anchor}"].to_numpy())
        if anchor in models.features
        else None
    )
    for label, removed in removal_sets.items():
        for share in SHARES:
            scores: dict[str, list[float]] = {name: [] for name in COMPARED}
            for _ in range(REPEATS if 0 < share < 1 else 1):
                masked = models.predict(without_modalities(test, removed, share, rng))
                for name in COMPARED:
                    value = training.auroc(y, masked[name].to_numpy())
                    if value is not None:
                        scores[name].append(value)
            for name, values in scores.items():
                result.degradation.append(
                    {
                        "removed": label,
                        "share": share,
                        "model": name,
                        "auroc": float(np.mean(values)) if values else None,
                        "auroc_sd": float(np.std(values)) if values else None,
                    }
                )

    p_late = predicted["late_fusion"].to_numpy()
    result.subgroups, gaps = _subgroups(test, y, p_late, rng)
    baseline, contributions = models.late_contributions(test)
    result.contributions = {
        m: contributions[:, j].tolist() for j, m in enumerate(models.modalities)
    }
    result.summary = _summary(result, test, y, predicted, models, anchor_only, gaps, baseline)
    return result


def _summary(result, test, y, predicted, models, anchor_only, gaps, baseline) -> dict:
    """The headline numbers and the issue's targets, measured."""
    by_model = {r["model"]: r for r in result.strategies}
    late = by_model["late_fusion"]["auroc"]
    oracle = by_model.get("oracle", {}).get("auroc")
    multi = _pattern(test, models.modalities)
    multi = np.array(["+" in p for p in multi])
    late_multi = training.auroc(y[multi], predicted["late_fusion"].to_numpy()[multi])
    single_multi = {
        m: training.auroc(y[multi], predicted[f"p_{m}"].to_numpy()[multi])
        for m in models.modalities
        if not np.isnan(predicted[f"p_{m}"].to_numpy()[multi]).any()
    }
    single_multi = {m: v for m, v in single_multi.items() if v is not None}
    # "50% of each optional modality removed": every optional modality at once when several.
    removed_label = (
        ALL_OPTIONAL if any(r["removed"] == ALL_OPTIONAL for r in result.degradation) else None
    )
    at_half = [
        r["auroc"]
        for r in result.degradation
        if r["model"] == "late_fusion"
        and r["share"] == 0.5
        and (removed_label in (None, r["removed"]))
    ]
    # A ratio of a gain that is within noise means nothing: reported only above MIN_GAIN.
    gain = None if late is None or anchor_only is None else late - anchor_only
    retained = None
    if gain is not None and gain >= MIN_GAIN and at_half:
        retained = (at_half[0] - anchor_only) / gain
    largest = max(gaps.items(), key=lambda kv: kv[1]["gap"], default=None)
    weights = models.attention_weights(test)
    has = np.column_stack([test[f"has_{m}"].to_numpy(dtype=bool) for m in models.modalities])
    return {
        "test_patients": int(len(y)),
        "test_events": int(y.sum()),
        "modalities": models.modalities,
        **{f"auroc_{r['model']}": r["auroc"] for r in result.strategies},
        "oracle_auroc": oracle,
        "late_fusion_gap_to_oracle": None if oracle is None or late is None else oracle - late,
        "patients_with_two_or_more_modalities": int(multi.sum()),
        "late_fusion_auroc_two_or_more": late_multi,
        "best_single_auroc_two_or_more": max(single_multi.values(), default=None),
        "best_single_modality_two_or_more": max(single_multi, key=single_multi.get, default=None),
        "anchor_only_auroc": anchor_only,
        "late_fusion_gain_over_anchor": gain,
        "late_fusion_gain_retained_at_50pct_removed": retained,
        "largest_subgroup_gap": None
        if largest is None
        else {"attribute": largest[0], **largest[1]},
        "late_fusion_baseline_logit": baseline,
        "mean_abs_contribution": {
            m: float(np.mean(np.abs(v))) for m, v in result.contributions.items()
        },
        # Attention fusion's per-patient weights, averaged over the patients who have each
        # modality: how much it leans on a modality when it is there.
        "mean_attention_weight": {
            m: float(weights[has[:, j], j].mean()) if has[:, j].any() else None
            for j, m in enumerate(models.modalities)
        },
    }
