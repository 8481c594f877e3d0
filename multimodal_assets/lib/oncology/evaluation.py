"""How right the oncology workflow is, against the generator's latent truth: criterion accuracy
by evidence source, patient-level eligibility precision/recall, and whether similar patients
are similar in the latent state and in outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .criteria import UNKNOWN, arm_status
from .facts import latent_facts
from .screening import screen
from .similarity import Profiles, exact_search
from .trials import Trial

KEYS = ["research_key", "trial_id", "arm_id", "criterion_id"]
NEIGHBOURS = 10


def criterion_source(node: dict) -> str:
    """Where a criterion's evidence comes from: structured_ehr, genomics, notes, imaging,
    treatment_history (EHR orders and notes together) or mixed."""
    for connective in ("and", "or"):
        if connective in node:
            kinds = {criterion_source(child) for child in node[connective]}
            return kinds.pop() if len(kinds) == 1 else "mixed"
    ((kind, spec),) = [(k, v) for k, v in node.items() if k != "criterion_id"]
    if kind == "clinical":
        return "genomics" if set(spec) == {"tmb_numerical"} else "structured_ehr"
    return {"note": "notes", "genomic": "genomics"}.get(kind, kind)


def truth_screening(
    trials: tuple[Trial, ...], cohort: pd.DataFrame, research_keys: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(criterion truth, arm truth) of every patient from its latent state."""
    criteria, arms = screen(trials, latent_facts(cohort, research_keys))
    return pd.DataFrame(criteria), pd.DataFrame(arms)


def screening_accuracy(
    found: pd.DataFrame,
    truth: pd.DataFrame,
    found_arms: pd.DataFrame,
    truth_arms: pd.DataFrame,
    trials: tuple[Trial, ...],
) -> dict:
    """Criterion accuracy by evidence source (unknown from missing data apart from wrong), and
    patient-level precision/recall of `eligible` and of `eligible ∪ potentially_eligible`."""
    sources = {
        (t.trial_id, a.arm_id, c.criterion_id): criterion_source(c.node)
        for t in trials
        for a in t.arms
        for c in a.criteria
    }
    joined = found.merge(truth[KEYS + ["status"]], on=KEYS, suffixes=("", "_true"))
    joined["source"] = [
        sources[(t, a, c)]
        for t, a, c in zip(joined.trial_id, joined.arm_id, joined.criterion_id, strict=True)
    ]
    out: dict = {"criteria_compared": len(joined)}
    for source, rows in [("all", joined), *joined.groupby("source")]:
        n = len(rows)
        unknown = int((rows.status == UNKNOWN).sum())
        decided = rows[rows.status != UNKNOWN]
        wrong = int((decided.status != decided.status_true).sum())
        out[f"{source}_criteria"] = n
        out[f"{source}_accuracy"] = round(float((rows.status == rows.status_true).mean()), 4)
        out[f"{source}_unknown_share"] = round(unknown / n, 4)
        out[f"{source}_wrong_share"] = round(wrong / n, 4)
        out[f"{source}_accuracy_when_decided"] = (
            round(1 - wrong / len(decided), 4) if len(decided) else None
        )
    arms = found_arms.merge(
        truth_arms[["research_key", "trial_id", "arm_id", "status"]],
        on=["research_key", "trial_id", "arm_id"],
        suffixes=("", "_true"),
    )
    truly = arms.status_true == "eligible"
    for name, flagged in (
        ("eligible", arms.status == "eligible"),
        ("eligible_or_potentially", arms.status.isin(("eligible", "potentially_eligible"))),
    ):
        hits, chosen, true = int((flagged & truly).sum()), int(flagged.sum()), int(truly.sum())
        out[f"{name}_precision"] = round(hits / chosen, 4) if chosen else None
        out[f"{name}_recall"] = round(hits / true, 4) if true else None
    out["truly_eligible_patient_arms"] = int(truly.sum())
    return out


def arm_statuses_agree(criteria: pd.DataFrame, candidates: pd.DataFrame) -> bool:
    """Whether arm statuses equal the rule of `criteria.arm_status` over their criterion rows."""
    expected = criteria.groupby(["research_key", "trial_id", "arm_id"]).status.agg(
        lambda s: arm_status(list(s))
    )
    got = candidates.set_index(["research_key", "trial_id", "arm_id"]).status
    return bool(expected.sort_index().equals(got.sort_index()))


LATENT_NUMERIC = (
    "age_at_index",
    "ecog",
    "frailty",
    "tmb",
    "prs_latent",
    "lesion_diameter_mm",
    "lesion_density_hu",
    "lesion_texture",
    "activity_decline",
    "symptom_burden",
    "hemoglobin_g_dl",
    "albumin_g_dl",
    "weight_change_pct_180d",
)


def latent_space(cohort: pd.DataFrame) -> np.ndarray:
    """Each patient's latent state as a standardized vector (stage and driver one-hot)."""
    numeric = cohort[list(LATENT_NUMERIC)].astype(float)
    numeric = numeric.assign(
        log_ldh=np.log(cohort.ldh_u_l.astype(float)), log_crp=np.log(cohort.crp_mg_l + 0.1)
    )
    z = (numeric - numeric.mean()) / numeric.std(ddof=0).replace(0, 1)
    categorical = pd.get_dummies(cohort[["stage_group", "driver", "histology"]]).astype(float)
    return np.hstack([z.to_numpy(), categorical.to_numpy()])


def similarity_against_latent(
    profiles: Profiles,
    latent: np.ndarray,
    labels: np.ndarray,
    k: int = NEIGHBOURS,
    queries: int = 500,
    seed: int = 0,
) -> dict:
    """recall@k of the latent nearest neighbours by multimodal, imaging-only and random search,
    and how often a patient's k neighbours share its 12-month outcome, against random pairs.

    `latent` and `labels` are aligned with `profiles` rows."""
    rng = np.random.default_rng(seed)
    n = len(profiles)
    with_imaging = np.flatnonzero(profiles.present["imaging"])
    chosen = rng.choice(with_imaging, min(queries, len(with_imaging)), replace=False)
    row_of = {key: row for row, key in enumerate(profiles.keys)}
    squared = (latent**2).sum(axis=1)
    recalls = {"multimodal": [], "imaging_only": [], "random": []}
    agreement = {"multimodal": [], "imaging_only": [], "random": []}
    for q in chosen:
        d = squared + squared[q] - 2 * latent @ latent[q]
        d[q] = np.inf
        truth = set(np.argpartition(d, k)[:k].tolist())
        rows = {
            "multimodal": [row_of[h.research_key] for h in exact_search(profiles, int(q), k)],
            "imaging_only": [
                row_of[h.research_key] for h in exact_search(profiles, int(q), k, ["imaging"])
            ],
            "random": rng.choice(np.delete(np.arange(n), q), k, replace=False).tolist(),
        }
        for name, found in rows.items():
            recalls[name].append(len(truth & set(found)) / k)
            agreement[name].append(float(np.mean(labels[found] == labels[q])) if found else np.nan)
    rate = float(labels.mean())
    out = {
        "queries": len(chosen),
        "k": k,
        "random_pair_outcome_agreement": round(rate**2 + (1 - rate) ** 2, 4),
    }
    for name in recalls:
        values = np.array(recalls[name])
        out[f"{name}_latent_recall_at_{k}"] = round(float(values.mean()), 4)
        out[f"{name}_latent_recall_ci_low"], out[f"{name}_latent_recall_ci_high"] = (
            round(float(x), 4) for x in _bootstrap_ci(values, rng)
        )
        out[f"{name}_outcome_agreement"] = round(float(np.nanmean(agreement[name])), 4)
    return out


def _bootstrap_ci(values: np.ndarray, rng, repeats: int = 1000) -> tuple[float, float]:
    means = [rng.choice(values, len(values)).mean() for _ in range(repeats)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
