"""95% intervals for the evaluation: percentile bootstrap over test patients, resampled within
each outcome (every resample keeps the split's events and non-events, so AUROC is always
defined), and paired differences between two models scored on the same resamples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVEL = 95


def stratified_samples(y: np.ndarray, repeats: int, rng) -> list[np.ndarray]:
    """`repeats` index arrays, each drawing the positives and the negatives with replacement."""
    y = np.asarray(y, dtype=bool)
    positives, negatives = np.flatnonzero(y), np.flatnonzero(~y)
    return [
        np.concatenate(
            [rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))]
        )
        for _ in range(repeats)
    ]


def percentile_interval(values) -> tuple[float | None, float | None]:
    """The central 95% of bootstrap values (None, None without any)."""
    values = [v for v in values if v is not None and not np.isnan(v)]
    if not values:
        return None, None
    tail = (100 - LEVEL) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def with_interval(
    metric: Callable, y: np.ndarray, p: np.ndarray, samples: list[np.ndarray]
) -> tuple[float | None, float | None, float | None]:
    """(value, low, high) of `metric(y, p)`, patients with no prediction (NaN) left out."""
    scored = ~np.isnan(p)
    value = metric(y[scored], p[scored]) if scored.any() else None
    boot = []
    for s in samples:
        keep = s[scored[s]]
        boot.append(metric(y[keep], p[keep]) if len(keep) else None)
    return (value, *percentile_interval(boot))


def paired_difference(
    metric: Callable, y: np.ndarray, a: np.ndarray, b: np.ndarray, samples: list[np.ndarray]
) -> dict:
    """metric(a) − metric(b) on the patients both score, with its interval from the same
    resamples; `separated` when the interval excludes zero."""
    both = ~np.isnan(a) & ~np.isnan(b)

    def difference(index):
        first, second = metric(y[index], a[index]), metric(y[index], b[index])
        return None if first is None or second is None else first - second

    boot = [difference(s[both[s]]) for s in samples]
    low, high = percentile_interval(boot)
    return {
        "difference": difference(np.flatnonzero(both)),
        "ci_low": low,
        "ci_high": high,
        "separated": low is not None and (low > 0 or high < 0),
        "n": int(both.sum()),
    }
