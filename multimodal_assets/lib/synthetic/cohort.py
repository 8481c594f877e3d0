"""The latent model: one draw per patient from which every modality renders part of one story.

Everything is vectorized over patients and comes from one seeded numpy Generator, so a seed
gives the same cohort byte for byte. The outcome's true probability is kept, so the best
achievable AUROC is known.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd

from .identities import draw_identities

INDEX_START = date(2019, 1, 1)
INDEX_END = date(2024, 6, 30)
# From this date on, sequencing and wearables become far more common: the drift scenario.
AVAILABILITY_SHIFT_DATE = date(2022, 7, 1)
SITES = ("site_a", "site_b", "site_c")
RACES = ("White", "Black or African American", "Asian", "Other")
ANCESTRY_BY_RACE = {
    "White": "EUR",
    "Black or African American": "AFR",
    "Asian": "EAS",
    "Other": "AMR",
}
STAGE_EFFECT = {"I": -1.5, "II": -0.7, "III": 0.0, "IV": 1.0}
# Systemic or local treatments some stage III/IV patients had before the index date (notes
# mention them all; the EHR holds the drugs' orders for some). Immunotherapy included.
PRIOR_TREATMENTS = (
    "carboplatin",
    "cisplatin",
    "pemetrexed",
    "paclitaxel",
    "radiation therapy",
    "pembrolizumab",
    "durvalumab",
)
PRIOR_ORDER_RECORDED = 0.6  # share of prior drugs whose order is in the delivered EHR
# Wearable devices are worn from 8 weeks before the index date to 4 weeks after it.
WEARABLE_LEAD_DAYS = 56
WEARABLE_FOLLOW_DAYS = 28


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _z(x):
    return (x - x.mean()) / (x.std() + 1e-9)


def _pick(rng, options, probs_matrix):
    """Row-wise categorical draw: probs_matrix has one row of probabilities per patient."""
    cumulative = np.cumsum(probs_matrix, axis=1)
    cumulative /= cumulative[:, -1:]
    u = rng.random(len(probs_matrix))[:, None]
    return np.asarray(options, dtype=object)[(u > cumulative).sum(axis=1)]


def _devices(has_wearables: np.ndarray, index_date: pd.DatetimeIndex):
    """A device per wearable patient; one device is re-assigned to a later patient."""
    n = len(has_wearables)
    start = (index_date - pd.Timedelta(days=WEARABLE_LEAD_DAYS)).date
    end = (index_date + pd.Timedelta(days=WEARABLE_FOLLOW_DAYS)).date
    device = np.array([f"WD-{i:06d}" if has_wearables[i] else None for i in range(n)], dtype=object)
    wearers = [i for i in np.argsort(np.asarray(index_date), kind="stable") if has_wearables[i]]
    if wearers:
        first = wearers[0]
        later = next((i for i in wearers if start[i] > end[first] + timedelta(days=30)), None)
        if later is not None:
            device[later] = device[first]
    return (device, np.where(has_wearables, start, None), np.where(has_wearables, end, None))


def draw_cohort(n: int, seed: int) -> pd.DataFrame:
    """The latent truth for `n` patients: demographics, tumour, signals, availability, label."""
    rng = np.random.default_rng(seed)
    ids = rng.bytes(16 * n)
    patient_id = [str(uuid.UUID(bytes=ids[16 * i : 16 * i + 16], version=4)) for i in range(n)]
    # An affine permutation of 8-digit numbers: unique MRNs without a 10^8 array.
    mult, offset = 7919, int(rng.integers(0, 90_000_000))
    mrn = [f"MRN{(i * mult + offset) % 90_000_000 + 10_000_000}" for i in range(n)]

    sex = np.where(rng.random(n) < 0.48, "female", "male")
    age = np.clip(rng.normal(67, 9.5, n), 38, 94)
    span = (INDEX_END - INDEX_START).days
    index_offset = rng.integers(0, span, n)
    index_date = pd.to_datetime(INDEX_START) + pd.to_timedelta(index_offset, unit="D")
    birth_date = index_date - pd.to_timedelta(np.round(age * 365.25).astype(int), unit="D")
    age_at_index = (
        index_date.year
        - birth_date.year
        - (
            (index_date.month < birth_date.month)
            | ((index_date.month == birth_date.month) & (index_date.day < birth_date.day))
        )
    ).to_numpy()
    site = rng.choice(np.array(SITES), n, p=[0.45, 0.35, 0.20])
    race = rng.choice(np.array(RACES), n, p=[0.70, 0.12, 0.10, 0.08])
    asian = race == "Asian"
    female = sex == "female"

    p_never = 0.12 + 0.25 * asian + 0.07 * female
    p_current = np.full(n, 0.38)
    smoking = _pick(
        rng,
        ("never", "current", "former"),
        np.stack([p_never, p_current, 1 - p_never - p_current], axis=1),
    )
    smoker = smoking != "never"
    histology = _pick(
        rng,
        ("adenocarcinoma", "squamous_cell", "nsclc_nos"),
        np.stack(
            [np.where(smoker, 0.55, 0.85), np.where(smoker, 0.32, 0.05), np.full(n, 0.12)], axis=1
        ),
    )
    stage = rng.choice(np.array(("I", "II", "III", "IV")), n, p=[0.20, 0.12, 0.23, 0.45])
    stage_iv = stage == "IV"
    frailty = rng.normal(0, 1, n)
    ecog = np.clip(
        np.round(0.6 + 0.5 * stage_iv + 0.6 * frailty + rng.normal(0, 0.5, n)), 0, 3
    ).astype(int)

    # Oncogenic drivers are mutually exclusive; adenocarcinoma and never-smokers carry most.
    adeno = histology == "adenocarcinoma"
    p_egfr = np.where(adeno, 0.08 + 0.35 * (~smoker) + 0.2 * asian, 0.01)
    p_kras = np.where(adeno, np.where(smoker, 0.32, 0.06), 0.04)
    p_alk = np.where(adeno, 0.02 + 0.06 * (~smoker), 0.003)
    p_braf = np.where(adeno, 0.02, 0.005)
    p_none = np.clip(1 - p_egfr - p_kras - p_alk - p_braf, 0.05, 1)
    driver = _pick(
        rng,
        ("EGFR", "KRAS", "ALK", "BRAF", "none"),
        np.stack([p_egfr, p_kras, p_alk, p_braf, p_none], axis=1),
    )
    egfr_variant = np.where(
        driver == "EGFR", rng.choice(np.array(("L858R", "exon19del")), n, p=[0.45, 0.55]), None
    )
    kras_variant = np.where(
        driver == "KRAS",
        rng.choice(np.array(("G12C", "G12D", "G12V")), n, p=[0.45, 0.2, 0.35]),
        None,
    )
    braf_variant = np.where(driver == "BRAF", "V600E", None)
    tp53 = rng.random(n) < np.where(smoker, 0.55, 0.30)
    stk11 = rng.random(n) < np.where(driver == "KRAS", 0.25, 0.05)
    targeted = np.isin(driver, ("EGFR", "ALK"))
    log_tmb = np.log(4.0) + 0.9 * smoker - 0.7 * targeted + rng.normal(0, 0.7, n)
    tmb = np.round(np.exp(log_tmb), 1)
    prs = rng.normal(0, 1, n)

    lesion_mm = np.clip(
        pd.Series(stage).map({"I": 18, "II": 30, "III": 42, "IV": 48}).to_numpy()
        + rng.normal(0, 8, n),
        5,
        120,
    )
    lesion_hu = rng.normal(35, 12, n)
    texture = rng.normal(0, 1, n) + 0.4 * stage_iv
    activity_decline = 0.5 * frailty + rng.normal(0, 0.85, n)
    baseline_steps = np.exp(rng.normal(8.6 - 0.25 * ecog, 0.35))
    resting_hr = rng.normal(72 + 2 * frailty, 7)
    symptom_burden = rng.poisson(0.8 + 0.9 * stage_iv + 0.4 * np.clip(frailty, 0, None))

    hemoglobin = rng.normal(np.where(female, 12.6, 13.8) - 0.8 * stage_iv - 0.4 * frailty, 1.1)
    albumin = np.clip(rng.normal(4.0 - 0.3 * stage_iv - 0.25 * frailty, 0.35), 1.5, 5.5)
    ldh = np.exp(rng.normal(np.log(200) + 0.3 * stage_iv + 0.1 * frailty, 0.3))
    crp = np.exp(rng.normal(np.log(5) + 0.8 * stage_iv + 0.3 * frailty, 0.9))
    weight = np.clip(rng.normal(np.where(female, 66, 79), 13), 38, 180)
    weight_change_pct = rng.normal(-1 - 3 * stage_iv - 1.5 * np.clip(frailty, 0, None), 2.5)

    # The true risk, by the modality whose files show each term: the signal each modality makes
    # available, which the evaluation compares with what our per-modality models capture.
    true_logit = {
        "clinical": pd.Series(stage).map(STAGE_EFFECT).to_numpy()
        + 0.45 * ecog
        + 0.2 * frailty
        - 0.45 * _z(albumin)
        + 0.3 * _z(np.log(ldh))
        + 0.25 * _z(np.log(crp))
        - 0.08 * weight_change_pct,
        "genomics": -1.0 * targeted
        + 0.6 * stk11
        + 0.3 * (kras_variant == "G12D")
        - 0.25 * _z(log_tmb)
        + 0.35 * prs,
        "imaging": 0.45 * _z(lesion_mm) + 0.3 * texture,
        "wearables": 0.45 * activity_decline,
        "notes": 0.25 * symptom_burden,
    }
    logit = -1.0 + sum(true_logit.values())
    true_probability = _sigmoid(logit)
    label = rng.random(n) < true_probability
    progression_days = np.where(label, rng.integers(30, 366, n), -1)
    died = label & (rng.random(n) < 0.3)
    death_days = np.where(died, progression_days + rng.integers(0, 60, n), -1)

    after_shift = np.asarray(index_date >= pd.Timestamp(AVAILABILITY_SHIFT_DATE))
    has_genomics = rng.random(n) < _sigmoid(
        -0.6
        + 1.1 * np.isin(stage, ("III", "IV"))
        + 0.8 * adeno
        - 0.8 * (site == "site_c")
        + 1.2 * after_shift
    )
    has_germline = rng.random(n) < _sigmoid(-1.1 + 0.5 * (site == "site_a"))
    has_imaging = rng.random(n) < _sigmoid(1.8 - 0.9 * (site == "site_c") + 0.3 * stage_iv)
    has_notes = rng.random(n) < 0.9
    has_wearables = rng.random(n) < _sigmoid(
        -1.3 - 0.04 * (age_at_index - 65) - 0.4 * ecog + 1.6 * after_shift
    )

    device_id, wearable_start, wearable_end = _devices(has_wearables, index_date)
    research_consent = rng.random(n) < 0.85
    consent_opt_out = research_consent & (rng.random(n) < 0.06)
    identities = draw_identities(rng, sex)

    brain_metastases, prior = _screening_facts(n, seed, stage)
    return pd.DataFrame(
        {
            "patient_id": patient_id,
            "mrn": mrn,
            **identities,
            "sex": sex,
            "birth_date": birth_date.date,
            "index_date": index_date.date,
            "age_at_index": age_at_index,
            "site": site,
            "race": race,
            "ancestry_group": pd.Series(race).map(ANCESTRY_BY_RACE).to_numpy(),
            "smoking_status": smoking,
            "histology": histology,
            "stage_group": stage,
            "ecog": ecog,
            "frailty": frailty,
            "driver": driver,
            "egfr_variant": egfr_variant,
            "kras_variant": kras_variant,
            "braf_variant": braf_variant,
            "tp53": tp53,
            "stk11": stk11,
            "tmb": tmb,
            "prs_latent": prs,
            "lesion_diameter_mm": lesion_mm,
            "lesion_density_hu": lesion_hu,
            "lesion_texture": texture,
            "activity_decline": activity_decline,
            "baseline_steps": baseline_steps,
            "resting_hr": resting_hr,
            "symptom_burden": symptom_burden,
            "hemoglobin_g_dl": np.round(hemoglobin, 1),
            "albumin_g_dl": np.round(albumin, 1),
            "ldh_u_l": np.round(ldh),
            "crp_mg_l": np.round(crp, 1),
            "weight_kg": np.round(weight, 1),
            "weight_change_pct_180d": weight_change_pct,
            "true_probability": true_probability,
            **{f"true_logit_{m}": v for m, v in true_logit.items()},
            "label": label,
            "progression_days": progression_days,
            "died": died,
            "death_days": death_days,
            "has_clinical": np.ones(n, dtype=bool),
            "has_genomics": has_genomics,
            "has_germline": has_germline,
            "has_imaging": has_imaging,
            "has_notes": has_notes,
            "has_wearables": has_wearables,
            "device_id": device_id,
            "wearable_start": wearable_start,
            "wearable_end": wearable_end,
            "research_consent": research_consent,
            "consent_opt_out": consent_opt_out,
            "brain_metastases": brain_metastases,
            **prior,
        }
    )


def _screening_facts(n: int, seed: int, stage: np.ndarray) -> tuple[np.ndarray, dict]:
    """Facts trial screening asks about: brain metastases and the treatments before the index
    date. A stream of their own, so adding them left every other draw of a seed unchanged."""
    rng = np.random.default_rng([seed, 17])
    advanced = np.isin(stage, ("III", "IV"))
    brain = rng.random(n) < np.where(stage == "IV", 0.25, np.where(stage == "III", 0.05, 0.0))
    names, days, recorded = [], [], []
    for i in range(n):
        k = int(rng.integers(1, 3)) if advanced[i] and rng.random() < 0.4 else 0
        chosen = [str(t) for t in rng.choice(np.array(PRIOR_TREATMENTS), k, replace=False)]
        names.append(chosen)
        days.append([int(d) for d in rng.integers(20, 120, k)])
        recorded.append(
            [t != "radiation therapy" and rng.random() < PRIOR_ORDER_RECORDED for t in chosen]
        )
    return brain, {
        "prior_treatments": names,
        "prior_treatment_days_before": days,
        "prior_treatment_ordered": recorded,
    }
