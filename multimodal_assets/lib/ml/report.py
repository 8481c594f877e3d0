"""The fusion evaluation as a report a person can read: Markdown tables and inline plots."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from .evaluation import (
    COMPARED,
    MIN_GAIN,
    MIN_SUBGROUP,
    REPEATS,
    Evaluation,
    anchor_modality,
)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


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
                ax.errorbar(
                    [100 * r["share"] for r in points],
                    [r["auroc"] for r in points],
                    yerr=[r["auroc_sd"] for r in points],
                    label=name,
                    marker="o",
                    capsize=2,
                    linestyle="--" if name == "best_single" else "-",
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
                {"measure": "late fusion AUROC", "value": s.get("auroc_late_fusion")},
                {"measure": "oracle AUROC (true probabilities)", "value": s.get("oracle_auroc")},
                {
                    "measure": "gap to oracle (goal ≤ 0.02)",
                    "value": s.get("late_fusion_gap_to_oracle"),
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
                    "value": s.get("late_fusion_gain_over_anchor"),
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
        "Per-modality models (`p_<modality>`) are scored on the patients who have that modality.",
        _table(result.strategies, ["model", "n", "auroc", "auprc", "brier", "ece"]),
        "![ROC and calibration](roc_calibration.png)",
        "## By availability pattern",
        _table(result.patterns, ["pattern", "model", "n", "auroc", "brier"]),
        "## Degradation when modalities are missing",
        f"Each optional modality (and all of them together) removed from a growing share of test "
        f"patients, {REPEATS} random draws per point (mean ± sd).",
        _table(result.degradation, ["removed", "share", "model", "auroc", "auroc_sd"]),
        "![Degradation](degradation.png)" if "degradation" in plots else "",
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
