"""Bootstrap intervals of the evaluation: stratified resamples, intervals that shrink with n,
paired differences that separate only what differs."""

import numpy as np

from multimodal_assets.lib.ml import intervals, training


def _cohort(n: int, signal: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    return y, signal * y + rng.normal(size=n)


def test_resamples_keep_the_events_and_non_events_of_the_split():
    y, _ = _cohort(200, 1.0)
    for sample in intervals.stratified_samples(y, 20, np.random.default_rng(1)):
        assert len(sample) == len(y) and y[sample].sum() == y.sum()


def test_an_interval_holds_its_estimate_and_narrows_with_more_patients():
    widths = []
    for n in (100, 4000):
        y, p = _cohort(n, 1.0)
        samples = intervals.stratified_samples(y, 300, np.random.default_rng(2))
        value, low, high = intervals.with_interval(training.auroc, y, p, samples)
        assert low < value < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # about 1/sqrt(40) as wide


def test_patients_without_a_prediction_are_left_out_not_counted_as_wrong():
    y, p = _cohort(400, 1.5)
    holed = p.copy()
    holed[::2] = np.nan
    samples = intervals.stratified_samples(y, 50, np.random.default_rng(3))
    value, _, _ = intervals.with_interval(training.auroc, y, holed, samples)
    assert value == training.auroc(y[1::2], p[1::2])


def test_paired_differences_separate_a_better_model_and_not_a_copy():
    y, p = _cohort(2000, 1.0)
    better = p + 1.0 * y
    samples = intervals.stratified_samples(y, 300, np.random.default_rng(4))
    same = intervals.paired_difference(training.auroc, y, p, p.copy(), samples)
    assert same["difference"] == 0 and not same["separated"]
    found = intervals.paired_difference(training.auroc, y, better, p, samples)
    assert found["separated"] and 0 < found["ci_low"] < found["difference"] < found["ci_high"]
    noise = np.random.default_rng(5).normal(scale=1e-3, size=len(p))
    tiny = intervals.paired_difference(training.auroc, y, p + noise, p, samples)
    assert not tiny["separated"]
