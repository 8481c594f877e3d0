"""Drift between a reference population (the training snapshot) and the one being scored:
population stability index (PSI) and Kolmogorov–Smirnov per feature, and availability drift of
every `has_<modality>` flag. Thresholds follow common PSI practice: 0.1 warns, 0.25 is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WARN_PSI = 0.10
ERROR_PSI = 0.25
_EPSILON = 1e-4  # keeps empty bins finite


def psi(reference, current, bins: int = 10) -> float:
    """PSI of a numeric or categorical feature; missing values are a category of their own."""
    ref, cur = np.asarray(reference, dtype=object), np.asarray(current, dtype=object)
    numeric = all(
        isinstance(v, (int, float, np.number, bool, np.bool_)) or v is None for v in ref[:100]
    )
    if numeric and not all(isinstance(v, (bool, np.bool_)) for v in ref if v is not None):
        ref_f = np.array([np.nan if v is None else float(v) for v in ref])
        cur_f = np.array([np.nan if v is None else float(v) for v in cur])
        finite = ref_f[~np.isnan(ref_f)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))) if len(finite) else []
        ref_codes = np.where(np.isnan(ref_f), -1, np.searchsorted(edges[1:-1], ref_f, "right"))
        cur_codes = np.where(np.isnan(cur_f), -1, np.searchsorted(edges[1:-1], cur_f, "right"))
    else:
        ref_codes = np.array([str(v) for v in ref])
        cur_codes = np.array([str(v) for v in cur])
    categories = np.union1d(ref_codes, cur_codes)
    r = np.array([(ref_codes == c).mean() for c in categories]) + _EPSILON
    c = np.array([(cur_codes == c).mean() for c in categories]) + _EPSILON
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference, current) -> float | None:
    """Two-sample Kolmogorov–Smirnov statistic of a numeric feature (None if not numeric)."""
    from scipy.stats import ks_2samp

    try:
        ref = np.asarray(reference, dtype=float)
        cur = np.asarray(current, dtype=float)
    except (TypeError, ValueError):
        return None
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    return float(ks_2samp(ref, cur).statistic)


@dataclass(frozen=True)
class DriftReport:
    features: dict[str, dict[str, float | None]]
    availability: dict[str, float]

    @property
    def worst_psi(self) -> float:
        values = [v["psi"] for v in self.features.values()] + list(self.availability.values())
        return max(values, default=0.0)

    @property
    def status(self) -> str:
        worst = self.worst_psi
        return "error" if worst >= ERROR_PSI else "warn" if worst >= WARN_PSI else "ok"


def drift_report(reference, current, features: list[str], flags: list[str]) -> DriftReport:
    """PSI and KS per feature, PSI per availability flag, for two pandas frames."""
    return DriftReport(
        features={
            name: {
                "psi": psi(reference[name], current[name]),
                "ks": ks(reference[name], current[name]),
            }
            for name in features
        },
        availability={
            flag: psi(reference[flag].astype(bool), current[flag].astype(bool)) for flag in flags
        },
    )
