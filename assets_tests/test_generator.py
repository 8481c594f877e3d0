"""The synthetic cohort: deterministic for a seed, labels consistent with true probabilities."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from multimodal_assets.lib.clinical.fhir import parse_fhir_file
from multimodal_assets.lib.synthetic.cohort import AVAILABILITY_SHIFT_DATE, draw_cohort
from multimodal_assets.lib.synthetic.writer import generate


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path):
    generate(25, 3, tmp_path / "a" / "landing", progress=False)
    generate(25, 3, tmp_path / "b" / "landing", progress=False)
    generate(25, 4, tmp_path / "c" / "landing", progress=False)
    a, b, c = (_tree_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert len(a) > 50
    assert a != c


def test_labels_agree_with_true_probabilities():
    cohort = draw_cohort(20_000, 5)
    p, y = cohort.true_probability.to_numpy(), cohort.label.to_numpy()
    # Overall: the label rate is within 4 standard errors of the mean probability.
    assert abs(y.mean() - p.mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / len(p))
    # Calibration by decile of the true probability.
    deciles = pd.qcut(p, 10, labels=False)
    for d in range(10):
        mask = deciles == d
        expected, observed = p[mask].mean(), y[mask].mean()
        assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / mask.sum()) + 1e-3
    assert set(cohort.progression_days[cohort.label]) <= set(range(30, 366))
    assert (cohort.progression_days[~cohort.label] == -1).all()


def test_the_true_risk_is_the_sum_of_one_term_per_modality():
    cohort = draw_cohort(2_000, 5)
    terms = cohort.filter(like="true_logit_")
    assert sorted(terms.columns) == [
        f"true_logit_{m}" for m in ("clinical", "genomics", "imaging", "notes", "wearables")
    ]
    logit = -1.0 + terms.sum(axis=1).to_numpy()
    assert np.allclose(1 / (1 + np.exp(-logit)), cohort.true_probability, atol=1e-12)
    assert (terms.std() > 0.1).all()  # every modality carries some of the risk


def test_availability_is_missing_not_at_random_and_shifts_over_time():
    cohort = draw_cohort(20_000, 6)
    after = pd.to_datetime(cohort.index_date) >= pd.Timestamp(AVAILABILITY_SHIFT_DATE)
    assert cohort.has_genomics[after].mean() > cohort.has_genomics[~after].mean() + 0.1
    assert cohort.has_wearables[after].mean() > cohort.has_wearables[~after].mean() + 0.1
    advanced = cohort.stage_group.isin(["III", "IV"])
    assert cohort.has_genomics[advanced].mean() > cohort.has_genomics[~advanced].mean() + 0.1
    assert cohort.has_clinical.all()
    assert cohort.mrn.is_unique and cohort.patient_id.is_unique


def test_truth_counts_match_rendered_bundles(tmp_path):
    landing = tmp_path / "landing"
    generate(12, 8, landing, progress=False)
    truth = pd.read_parquet(tmp_path / "truth" / "patients.parquet")
    deliveries = pd.read_parquet(tmp_path / "truth" / "clinical_deliveries.parquet")
    good = deliveries[deliveries.kind.isin(["baseline", "followup"])]
    conditions = sum(
        1
        for path in good.path
        for record in parse_fhir_file((landing / path).read_bytes())
        if record["resource_type"] == "Condition"
    )
    assert conditions == truth.n_conditions.sum()
    assert set(deliveries.expected_status) == {"ingested", "quarantined", "duplicate"}
    # Every truth row carries its label, its true probability and its modality availability.
    for column in (
        "mrn",
        "label",
        "true_probability",
        "has_genomics",
        "has_imaging",
        "has_notes",
        "has_wearables",
        "has_germline",
    ):
        assert column in truth.columns


def test_the_smallest_rendered_lesions_keep_a_soft_tissue_density():
    # At 10,000 patients three range checks failed: 5-mm lesions came out at 300-2,800 HU, the
    # texture pattern scaled on a box of a few voxels. Density 35 HU, textures up to +2.5 SD.
    from multimodal_assets.lib.imaging.pixels import ct_lesion
    from multimodal_assets.lib.synthetic.imaging import (
        FIELD_OF_VIEW_MM,
        SLICE_THICKNESS_MM,
        phantom_hu,
    )

    voxel = (SLICE_THICKNESS_MM, FIELD_OF_VIEW_MM / 128, FIELD_OF_VIEW_MM / 128)
    means = []
    for seed in range(120):
        rng = np.random.default_rng(seed)
        hu, _ = phantom_hu(128, 16, 5.0, 35.0, (seed % 6) / 2, rng)
        lesion = ct_lesion(hu, voxel)
        if lesion is not None:
            means.append(lesion["lesion_mean_hu"])
    assert len(means) > 60
    assert -150 < min(means) and max(means) < 200


def test_planted_faults_split_failed_checks_into_found_unflagged_and_unexpected(tmp_path):
    from multimodal_assets.lib.synthetic.planted import (
        classify_failures,
        read_planted,
        write_planted,
    )

    assert read_planted(tmp_path) == []  # no truth: every failure is unexpected
    write_planted(tmp_path, {"instance", "unknown_sample", "truncated_pixels"}, True)
    planted = read_planted(tmp_path)
    failures = classify_failures(
        [
            "silver/genomic_samples:file_samples_mapped_to_patients",
            "gold/patient_features:between__age",
        ],
        planted,
    )
    assert [f.kind for f in failures.found] == ["unknown_sample"]
    assert [f.kind for f in failures.unflagged] == ["truncated_pixels", "availability_shift"]
    assert failures.unexpected == ["gold/patient_features:between__age"]
