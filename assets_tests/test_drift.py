"""Drift statistics: the generator's availability shift trips them, a stable population not."""

import numpy as np
import pandas as pd

from multimodal_assets.lib.ml import drift
from multimodal_assets.lib.synthetic.cohort import AVAILABILITY_SHIFT_DATE, draw_cohort

FEATURES = ["albumin_g_dl", "ldh_u_l", "crp_mg_l", "ecog", "stage_group", "smoking_status"]
FLAGS = ["has_genomics", "has_imaging", "has_notes", "has_wearables", "has_germline"]


def _eras(patients: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    cohort = draw_cohort(patients, seed)
    after = pd.to_datetime(cohort.index_date) >= pd.Timestamp(AVAILABILITY_SHIFT_DATE)
    return cohort[~after], cohort[after]


def test_psi_is_zero_for_identical_and_large_for_shifted_samples():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 5000)
    assert drift.psi(a, a) < 1e-9
    assert drift.psi(a, rng.normal(1, 1, 5000)) > drift.ERROR_PSI
    assert drift.psi(["x"] * 50 + ["y"] * 50, ["x"] * 90 + ["y"] * 10) > drift.ERROR_PSI
    assert drift.ks(a, a + 0.5) > 0.15


def test_small_samples_get_fewer_bins_so_noise_stays_under_the_warning_level():
    assert drift.bins_for(5000, 5000) == 10
    assert drift.bins_for(190, 55) == 3
    # A large PSI without evidence (tiny samples) is not raised; with evidence it is.
    assert drift.level(0.4, p_value=0.2) == "ok"
    assert drift.level(0.4, p_value=0.001) == "error"
    assert drift.level(0.15, p_value=0.001) == "warn"
    assert drift.level(0.4, p_value=0.001, tests=100) == "ok"  # not significant among 100


def test_the_generators_availability_shift_is_an_error():
    before, after = _eras(6000, 21)
    report = drift.drift_report(before, after, FEATURES + FLAGS)
    assert report.status == "error"
    assert report.items["has_wearables"]["level"] == "error"
    assert "has_wearables" in report.flagged()


def test_the_shift_is_flagged_at_the_default_cohort_size():
    # The default cohort has 300 patients: about 190 before the shift and 110 after.
    before, after = _eras(300, 23)
    assert drift.drift_report(before, after, FEATURES + FLAGS).status != "ok"


def test_a_population_without_shift_raises_few_alarms_over_repeated_draws():
    stable, _ = _eras(8000, 22)
    rng = np.random.default_rng(5)

    def statuses(size: int, draws: int) -> list[str]:
        out = []
        for _ in range(draws):
            sample = stable.iloc[rng.choice(len(stable), size, replace=False)]
            half = rng.random(size) < 0.5
            out.append(drift.drift_report(sample[half], sample[~half], FEATURES + FLAGS).status)
        return out

    # Measured over 100 draws each: 6 alarms at 300 patients (the design's 5% family-wise
    # rate), none at 5,000; the shift itself was an error in 30 of 30 cohorts of 300.
    small = statuses(300, 40)
    assert small.count("ok") >= 34
    assert statuses(5000, 10).count("ok") == 10
