"""The fusion evaluation as a report a person can read: Markdown tables and inline plots."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from .evaluation import (
    COMPARED,
    DEGRADATION_RESAMPLES,
    INTERVAL_METRICS,
    MIN_GAIN,
    MIN_PATTERN,
    MIN_SUBGROUP,
    PRODUCTION_DEFAULT,
    REPEATS,
    TRAINING_DROPOUT,
    Evaluation,
    anchor_modality,
)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _ci(value, low, high) -> str:
    """'0.886 (0.871 to 0.901)': a value with its 95% interval."""
    if value is None:
        return "–"
    return f"{_fmt(value)} ({_fmt(low)} to {_fmt(high)})" if low is not None else _fmt(value)


def _with_intervals(rows: list[dict], metrics) -> list[dict]:
    """Rows whose metric columns read as 'value (low to high)'."""
    return [
        {**r, **{m: _ci(r[m], r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high")) for m in metrics}}
        for r in rows
    ]


def _table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _plots(result: Evaluation, folder: Path) -> dict[str, Path]:
    """ROC, calibration, degradation, subgroup and contribution plots as PNG files."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    paths = {}

    def save(fig, name):
        paths[name] = folder / f"{name}.png"
        fig.tight_layout()
        fig.savefig(paths[name], dpi=80)
        plt.close(fig)

    fig, (roc, cal) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, (fpr, tpr) in result.roc.items():
        roc.plot(fpr, tpr, label=name, linestyle="--" if name == "oracle" else "-")
    roc.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    roc.set(
        title="ROC on the test split", xlabel="false positive rate", ylabel="true positive rate"
    )
    roc.legend(fontsize=7)
    for name, bins in result.calibration.items():
        cal.plot(
            [b["mean_predicted"] for b in bins],
            [b["observed_rate"] for b in bins],
            "o-",
            label=name,
        )
    cal.plot([0, 1], [0, 1], color="grey", linewidth=0.5)
    cal.set(
        title="Calibration (equal-frequency bins)",
        xlabel="mean predicted risk",
        ylabel="observed rate",
    )
    cal.legend(fontsize=7)
    save(fig, "roc_calibration")

    removed = sorted({r["removed"] for r in result.degradation})
    if removed:
        fig, axes = plt.subplots(1, len(removed), figsize=(5 * len(removed), 4), squeeze=False)
        for ax, label in zip(axes[0], removed, strict=True):
            for name in COMPARED:
                points = [
                    r for r in result.degradation if r["removed"] == label and r["model"] == name
                ]
                shares = [100 * r["share"] for r in points]
                (line,) = ax.plot(
                    shares,
                    [r["auroc"] for r in points],
                    label=name,
                    marker="o",
                    linestyle="--" if name == "best_single" else "-",
                )
                if all(r["auroc_ci_low"] is not None for r in points):
                    ax.fill_between(
                        shares,
                        [r["auroc_ci_low"] for r in points],
                        [r["auroc_ci_high"] for r in points],
                        color=line.get_color(),
                        alpha=0.12,
                    )
            anchor_only = result.summary.get("anchor_only_auroc")
            if anchor_only is not None:
                ax.axhline(
                    anchor_only, color="grey", linestyle=":", label=f"{anchor_modality()} only"
                )
            ax.set(
                title=f"removing {label}", xlabel="% of test patients without it", ylabel="AUROC"
            )
            ax.legend(fontsize=7)
        save(fig, "degradation")

    compared = [r for r in result.subgroups if r["compared"] and r["auroc"] is not None]
    if compared:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(compared) + 1.2))
        labels = [f"{r['attribute']}: {r['group']} (n={r['n']})" for r in compared]
        values = [r["auroc"] for r in compared]
        errors = [
            [
                v - (r["ci_low"] if r["ci_low"] is not None else v)
                for v, r in zip(values, compared, strict=True)
            ],
            [
                (r["ci_high"] if r["ci_high"] is not None else v) - v
                for v, r in zip(values, compared, strict=True)
            ],
        ]
        ax.errorbar(values, range(len(compared)), xerr=errors, fmt="o", capsize=3)
        ax.set_yticks(range(len(compared)), labels, fontsize=8)
        ax.set(title="Late fusion AUROC by subgroup (95% bootstrap CI)", xlabel="AUROC")
        save(fig, "subgroups")

    if result.contributions:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        names = list(result.contributions)
        ax.boxplot([result.contributions[m] for m in names], tick_labels=names)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set(title="Per-patient contribution to the late-fusion logit", ylabel="logit")
        save(fig, "contributions")
    return paths


def write_report(result: Evaluation, folder: Path, header: dict) -> str:
    """Write report.md, evaluation.json and the plots under `folder`; return the Markdown with
    the plots inlined (for Dagster metadata)."""
    folder.mkdir(parents=True, exist_ok=True)
    plots = _plots(result, folder)
    s = result.summary
    gap = s.get("largest_subgroup_gap")
    sections = [
        "# Risk model evaluation",
        "\n".join(f"- {k}: {v}" for k, v in header.items()),
        f"Test split: {s['test_patients']} patients, {s['test_events']} events. Modalities "
        f"modelled: {', '.join(s['modalities'])}.",
        "## Targets",
        _table(
            [
                {
                    "measure": "late fusion AUROC",
                    "value": _ci(
                        s.get("auroc_late_fusion"),
                        s.get("auroc_late_fusion_ci_low"),
                        s.get("auroc_late_fusion_ci_high"),
                    ),
                },
                {
                    "measure": f"strategy the evidence favours ({PRODUCTION_DEFAULT} unless "
                    "another beats it with an interval that excludes zero; gold.risk_scores "
                    f"stays on {PRODUCTION_DEFAULT}, whose per-modality terms add up)",
                    "value": s.get("strategy_for_production"),
                },
                {"measure": "oracle AUROC (true probabilities)", "value": s.get("oracle_auroc")},
                {
                    "measure": "gap to oracle (goal ≤ 0.02)",
                    "value": _ci(
                        s.get("late_fusion_gap_to_oracle"),
                        s.get("late_fusion_gap_to_oracle_ci_low"),
                        s.get("late_fusion_gap_to_oracle_ci_high"),
                    ),
                },
                {
                    "measure": "late fusion AUROC, ≥ 2 modalities",
                    "value": s.get("late_fusion_auroc_two_or_more"),
                },
                {
                    "measure": "best single modality AUROC, same patients",
                    "value": s.get("best_single_auroc_two_or_more"),
                },
                {
                    "measure": "late fusion gain over the anchor-only model",
                    "value": _ci(
                        s.get("late_fusion_gain_over_anchor"),
                        s.get("late_fusion_gain_over_anchor_ci_low"),
                        s.get("late_fusion_gain_over_anchor_ci_high"),
                    ),
                },
                {
                    "measure": "share of that gain kept at 50% removal "
                    f"(goal ≥ 0.8; shown when the gain is ≥ {MIN_GAIN})",
                    "value": s.get("late_fusion_gain_retained_at_50pct_removed"),
                },
                {
                    "measure": f"largest subgroup gap ({gap['attribute']}: {gap['best']} vs {gap['worst']})"
                    if gap
                    else "largest subgroup gap",
                    "value": gap["gap"] if gap else None,
                },
                {
                    "measure": "its 95% CI",
                    "value": f"{_fmt(gap['ci_low'])} to {_fmt(gap['ci_high'])}" if gap else None,
                },
            ],
            ["measure", "value"],
        ),
        "## Strategies on the test split",
        "Per-modality models (`p_<modality>`) are scored on the patients who have that modality. "
        "Every value: estimate (95% interval, percentile bootstrap over test patients resampled "
        "within each outcome).",
        _table(
            _with_intervals(result.strategies, INTERVAL_METRICS),
            ["model", "n", *INTERVAL_METRICS],
        ),
        "![ROC and calibration](roc_calibration.png)",
        f"## Strategies against {PRODUCTION_DEFAULT} (paired)",
        "AUROC difference on the same patients and resamples. Only a difference whose interval "
        "excludes zero is a difference; the others are within noise at this size.",
        _table(
            [
                {
                    "model": d["model"],
                    "n": d["n"],
                    "difference": _ci(d["difference"], d["ci_low"], d["ci_high"]),
                    "reading": (
                        ("better" if d["difference"] > 0 else "worse")
                        if d["separated"]
                        else "not separable"
                    ),
                }
                for d in result.differences
            ],
            ["model", "n", "difference", "reading"],
        ),
        "## Signal each modality carries, and how much our model of it captures",
        "On the test patients who have the modality: the AUROC of the modality's term of the "
        "true risk (from the generator's truth: what its files can tell) against our model of "
        "that modality alone; the difference is paired on the same resamples. A share above 1 "
        "means the modality's files also show terms the truth gives another modality (notes "
        "mention the stage and performance status).",
        _table(
            [
                {
                    **r,
                    "difference": _ci(r["difference"], r["ci_low"], r["ci_high"]),
                    "share_captured": _fmt(r["share_captured"], 2),
                }
                for r in _with_intervals(result.signal, ["auroc_true_term", "auroc_our_model"])
            ],
            ["modality", "n", "auroc_true_term", "auroc_our_model", "difference", "share_captured"],
        )
        if result.signal
        else "",
        "## By availability pattern",
        f"Patterns with fewer than {MIN_PATTERN} test patients (or one outcome only) are listed, "
        "not ranked: their intervals are wider than any difference between strategies.",
        _table(
            [
                {**r, "ranked": "yes" if r["ranked"] else "too few to rank"}
                for r in _with_intervals(result.patterns, ["auroc"])
            ],
            ["pattern", "model", "n", "events", "auroc", "brier", "ranked"],
        ),
        "## Degradation when modalities are missing",
        f"Each optional modality (and all of them together) removed from a growing share of test "
        f"patients, {REPEATS} random draws per point: the mean, and a 95% band over the draws "
        f"and {DEGRADATION_RESAMPLES} patient resamples each.",
        _table(
            _with_intervals(result.degradation, ["auroc"]),
            ["removed", "share", "model", "auroc", "auroc_sd"],
        ),
        "![Degradation](degradation.png)" if "degradation" in plots else "",
        "## Trained with modality dropout",
        f"The fusion strategies trained again with every optional modality removed from "
        f"{TRAINING_DROPOUT:.0%} of the training patients who have it, against the published "
        f"ones, as every optional modality goes missing from a growing share of test patients "
        "(the same removals for both).",
        _table(
            _with_intervals(result.dropout, ["auroc"]),
            ["training", "share", "model", "auroc", "auroc_sd"],
        )
        if result.dropout
        else "",
        "## Subgroups (late fusion)",
        f"Groups with fewer than {MIN_SUBGROUP} patients or one outcome only are listed, not "
        "compared. CIs: percentile bootstrap over test patients.",
        _table(
            result.subgroups, ["attribute", "group", "n", "events", "auroc", "ci_low", "ci_high"]
        ),
        "![Subgroups](subgroups.png)" if "subgroups" in plots else "",
        "## Per-modality contributions",
        "Late fusion's logit is a baseline plus one additive term per available modality; the "
        "per-patient terms are in `gold.risk_scores`.",
        "Attention fusion weighs the modalities a patient has per patient; the mean weight is "
        "taken over the patients who have the modality.",
        _table(
            [
                {
                    "modality": m,
                    "mean |contribution|": v,
                    "mean attention weight": s["mean_attention_weight"][m],
                }
                for m, v in s["mean_abs_contribution"].items()
            ],
            ["modality", "mean |contribution|", "mean attention weight"],
        ),
        "![Contributions](contributions.png)" if "contributions" in plots else "",
    ]
    markdown = "\n\n".join(part for part in sections if part)
    (folder / "report.md").write_text(markdown + "\n")
    (folder / "evaluation.json").write_text(
        json.dumps(
            {
                k: getattr(result, k)
                for k in (
                    "summary",
                    "strategies",
                    "patterns",
                    "degradation",
                    "differences",
                    "signal",
                    "dropout",
                    "subgroups",
                    "calibration",
                )
            },
            indent=2,
            default=str,
        )
    )
    for name, path in plots.items():  # inline for the Dagster UI, which cannot reach the files
        encoded = base64.b64encode(path.read_bytes()).decode()
        markdown = markdown.replace(f"({name}.png)", f"(data:image/png;base64,{encoded})")
    return markdown
