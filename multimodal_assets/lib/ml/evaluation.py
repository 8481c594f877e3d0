"""Evaluation of the fusion strategies on the test split: overall metrics and calibration, by
availability pattern, degradation when modalities go missing, subgroup gaps with bootstrap
confidence intervals, per-modality contributions, and the oracle ceiling; written as a report
(Markdown with plots) a person can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import intervals, training
from .fusion import ANCHOR
from .fusion_models import STRATEGIES, FusionModels, without_modalities

if TYPE_CHECKING:
    import pandas as pd

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
REPEATS = 10  # random removals per point of a degradation curve
BOOTSTRAP = 300
MIN_SUBGROUP = 10  # patients with both outcomes; smaller groups are listed, not compared
# Availability patterns with fewer test patients are listed with their intervals, not ranked:
# at n < 50 an AUROC interval is about ±0.15 wide, wider than any difference between strategies.
MIN_PATTERN = 50
DEGRADATION_RESAMPLES = 30  # bootstrap resamples per random removal, for the curves' bands
PRODUCTION_DEFAULT = "late_fusion"
# The declared rate of the modality-dropout variant the evaluation trains and compares: removal
# at test time runs past it (0.5, 0.75, 1.0), where published benchmarks report the protection
# ends.
TRAINING_DROPOUT = 0.3
DROPOUT_COMPARED = ("late_fusion", "attention_fusion", "intermediate_fusion")
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
    differences: list[dict] = field(default_factory=list)
    signal: list[dict] = field(default_factory=list)
    dropout: list[dict] = field(default_factory=list)
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


INTERVAL_METRICS = {
    "auroc": training.auroc,
    "auprc": training.auprc,
    "brier": training.brier,
    "ece": lambda y, p: training.expected_calibration_error(y, p) if len(y) else None,
}


def _scored(y: np.ndarray, p: np.ndarray, samples: list[np.ndarray]) -> dict:
    """n and every metric with its 95% interval (patients without a prediction left out)."""
    row = {"n": int((~np.isnan(p)).sum())}
    for name, metric in INTERVAL_METRICS.items():
        row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = intervals.with_interval(
            metric, y, p, samples
        )
    return row


def _signal_captured(test, y, truth, scores, modalities, rng) -> list[dict]:
    """Per modality, on the test patients who have it: the AUROC of the modality's true term
    of the risk (the signal its files carry) against our model of that modality alone."""
    rows = []
    for modality in modalities:
        column = f"true_logit_{modality}"
        if column not in truth.columns:
            continue
        members = np.flatnonzero(test[f"has_{modality}"].to_numpy(dtype=bool))
        y_members = y[members]
        if not 0 < y_members.sum() < len(members):
            continue
        samples = intervals.stratified_samples(y_members, BOOTSTRAP, rng)
        true_term = truth[column].to_numpy(dtype=float)[members]
        ours = scores[f"p_{modality}"][members]
        available, low, high = intervals.with_interval(
            training.auroc, y_members, true_term, samples
        )
        captured, c_low, c_high = intervals.with_interval(training.auroc, y_members, ours, samples)
        rows.append(
            {
                "modality": modality,
                "n": len(members),
                "auroc_true_term": available,
                "auroc_true_term_ci_low": low,
                "auroc_true_term_ci_high": high,
                "auroc_our_model": captured,
                "auroc_our_model_ci_low": c_low,
                "auroc_our_model_ci_high": c_high,
                # Discrimination above chance that our model keeps of what the term offers.
                "share_captured": (
                    (captured - 0.5) / (available - 0.5)
                    if captured is not None and available is not None and available > 0.52
                    else None
                ),
                **intervals.paired_difference(training.auroc, y_members, ours, true_term, samples),
            }
        )
    return rows


def _removal_curve(variants, test, y, removed, names, samples, rng) -> list[dict]:
    """AUROC of each model of each variant as `removed` go missing from a growing share of the
    test patients: the mean over random removals (the same removals for every variant) and a
    95% band over the removals and patient resamples."""
    rows = []
    for share in SHARES:
        means = {(v, n): [] for v in variants for n in names}
        resampled = {(v, n): [] for v in variants for n in names}
        for _ in range(REPEATS if 0 < share < 1 else 1):
            masked = without_modalities(test, removed, share, rng)
            for variant, models in variants.items():
                predicted = models.predict(masked)
                for name in names:
                    p = predicted[name].to_numpy()
                    value = training.auroc(y, p)
                    if value is not None:
                        means[variant, name].append(value)
                    # The band holds both sources of spread: which patients lose the
                    # modality (the repeats) and which patients are tested (the resamples).
                    resampled[variant, name] += [
                        training.auroc(y[s], p[s]) for s in samples[:DEGRADATION_RESAMPLES]
                    ]
        for (variant, name), values in means.items():
            low, high = intervals.percentile_interval(resampled[variant, name])
            rows.append(
                {
                    **({"training": variant} if variant else {}),
                    "share": share,
                    "model": name,
                    "auroc": float(np.mean(values)) if values else None,
                    "auroc_sd": float(np.std(values)) if values else None,
                    "auroc_ci_low": low,
                    "auroc_ci_high": high,
                }
            )
    return rows


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[list[float], list[float]]:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p)
    return fpr.round(4).tolist(), tpr.round(4).tolist()


def _subgroups(test: pd.DataFrame, y: np.ndarray, p: np.ndarray, samples) -> tuple[list, dict]:
    """AUROC with a bootstrap 95% CI per subgroup; per attribute the gap between its best and
    worst comparable groups, with a bootstrap CI of that gap."""
    attributes = {
        "sex": test.sex.to_numpy(dtype=object),
        "age_band": np.array([_age_band(a) for a in test.age_at_index]),
        "race": test.race.to_numpy(dtype=object),
        "site": test.site.to_numpy(dtype=object),
    }
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
    models: FusionModels,
    rows: pd.DataFrame,
    seed: int,
    truth: pd.DataFrame | None = None,
    dropout_models: FusionModels | None = None,
) -> Evaluation:
    """Evaluate every strategy on the test split of a training snapshot.

    `truth` (research_key, true_probability, and true_logit_<modality> per modality), when the
    cohort is synthetic, gives the oracle and the signal each modality makes available.
    `dropout_models`, trained on the same rows with modality dropout at TRAINING_DROPOUT, are
    compared with `models` as every optional modality goes missing, past that rate."""
    rng = np.random.default_rng(seed)
    test = rows[rows.split == "test"].reset_index(drop=True)
    y = test[training.LABEL].to_numpy(dtype=bool)
    predicted = models.predict(test)
    result = Evaluation()
    anchor = anchor_modality()

    # One set of resamples for every model: their intervals and paired differences line up.
    samples = intervals.stratified_samples(y, BOOTSTRAP, rng) if 0 < y.sum() < len(y) else []
    scores = {name: predicted[name].to_numpy() for name in predicted.columns}
    for name in [*COMPARED, *[f"p_{m}" for m in models.modalities]]:
        p = scores[name]
        result.strategies.append({"model": name, **_scored(y, p, samples)})
        if name in COMPARED and len(set(y.tolist())) == 2:
            result.calibration[name] = training.calibration_bins(y.astype(int), p)
            result.roc[name] = _roc_points(y, p)
    if truth is not None:
        oracle = test[["research_key"]].merge(truth, on="research_key", how="left")
        scores["oracle"] = oracle.true_probability.to_numpy(dtype=float)
        result.strategies.append({"model": "oracle", **_scored(y, scores["oracle"], samples)})
        if len(set(y.tolist())) == 2:
            result.roc["oracle"] = _roc_points(y, scores["oracle"])
        result.signal = _signal_captured(test, y, oracle, scores, models.modalities, rng)
    # Every strategy (and the ceiling, and the anchor alone) against the production default, on
    # the same resamples: a ranking is read from these intervals, never from point estimates.
    anchor_scores = f"p_{anchor}" if anchor in models.features else None
    for name in [*COMPARED, *(["oracle"] if truth is not None else []), anchor_scores]:
        if name is None or name == PRODUCTION_DEFAULT:
            continue
        result.differences.append(
            {
                "model": name,
                "versus": PRODUCTION_DEFAULT,
                **intervals.paired_difference(
                    training.auroc, y, scores[name], scores[PRODUCTION_DEFAULT], samples
                ),
            }
        )

    patterns = _pattern(test, models.modalities)
    for pattern in sorted(set(patterns)):
        members = np.flatnonzero(patterns == pattern)
        y_members = y[members]
        both = 0 < y_members.sum() < len(members)
        within = intervals.stratified_samples(y_members, BOOTSTRAP, rng) if both else []
        for name in COMPARED:
            p = scores[name][members]
            value, low, high = intervals.with_interval(training.auroc, y_members, p, within)
            result.patterns.append(
                {
                    "pattern": pattern,
                    "model": name,
                    "n": len(members),
                    "events": int(y_members.sum()),
                    "auroc": value,
                    "auroc_ci_low": low,
                    "auroc_ci_high": high,
                    "brier": training.brier(y_members, p),
                    "ranked": both and len(members) >= MIN_PATTERN,
                }
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
        for row in _removal_curve({"": models}, test, y, removed, COMPARED, samples, rng):
            result.degradation.append({"removed": label, **row})
    if dropout_models is not None and len(optional) > 1:
        # The same removals scored by the models trained with and without modality dropout.
        variants = {"none": models, f"dropout {TRAINING_DROPOUT:.0%}": dropout_models}
        result.dropout = _removal_curve(variants, test, y, optional, DROPOUT_COMPARED, samples, rng)

    p_late = predicted["late_fusion"].to_numpy()
    result.subgroups, gaps = _subgroups(test, y, p_late, samples)
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
    versus = {d["model"]: d for d in result.differences}
    oracle_gap = versus.get("oracle", {})
    # The anchor alone minus late fusion, turned around: late fusion's gain and its interval.
    anchor_gain = versus.get(f"p_{anchor_modality()}", {})
    # Late fusion is favoured unless another strategy beats it with an interval that excludes
    # zero (the scores stay on late fusion either way: its per-modality terms add up).
    winners = [
        d
        for d in result.differences
        if d["model"] in COMPARED and d["separated"] and d["difference"] > 0
    ]
    production = max(winners, key=lambda d: d["ci_low"])["model"] if winners else PRODUCTION_DEFAULT
    has = np.column_stack([test[f"has_{m}"].to_numpy(dtype=bool) for m in models.modalities])
    return {
        "test_patients": int(len(y)),
        "test_events": int(y.sum()),
        "modalities": models.modalities,
        **{f"auroc_{r['model']}": r["auroc"] for r in result.strategies},
        "oracle_auroc": oracle,
        "late_fusion_gap_to_oracle": None if oracle is None or late is None else oracle - late,
        "late_fusion_gap_to_oracle_ci_low": oracle_gap.get("ci_low"),
        "late_fusion_gap_to_oracle_ci_high": oracle_gap.get("ci_high"),
        **{
            f"auroc_{r['model']}_ci_{end}": r[f"auroc_ci_{end}"]
            for r in result.strategies
            for end in ("low", "high")
        },
        "strategy_for_production": production,
        **{f"auroc_true_{r['modality']}_term": r["auroc_true_term"] for r in result.signal},
        **{f"share_of_{r['modality']}_signal_captured": r["share_captured"] for r in result.signal},
        "patients_with_two_or_more_modalities": int(multi.sum()),
        "late_fusion_auroc_two_or_more": late_multi,
        "best_single_auroc_two_or_more": max(single_multi.values(), default=None),
        "best_single_modality_two_or_more": max(single_multi, key=single_multi.get, default=None),
        "anchor_only_auroc": anchor_only,
        "late_fusion_gain_over_anchor": gain,
        "late_fusion_gain_over_anchor_ci_low": (
            -anchor_gain["ci_high"] if anchor_gain.get("ci_high") is not None else None
        ),
        "late_fusion_gain_over_anchor_ci_high": (
            -anchor_gain["ci_low"] if anchor_gain.get("ci_low") is not None else None
        ),
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
