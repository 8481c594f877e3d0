"""Drift between a reference population (what a model was trained on) and the one being scored:
population stability index (PSI) and Kolmogorov–Smirnov per feature, drift of the predictions,
and availability drift of every `has_<modality>` flag.

Thresholds follow common PSI practice: 0.1 warns, 0.25 is an error. PSI is biased upwards in
small samples (two samples of one population score about (bins − 1)(1/n₁ + 1/n₂)), so numeric
features get fewer bins when samples are small, and a level is raised only when the shift is also
significant (chi-square on the binned counts, Bonferroni-corrected so the whole report has a 5%
false-alarm rate): magnitude and evidence, not either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WARN_PSI = 0.10
ERROR_PSI = 0.25
FAMILY_SIGNIFICANCE = 0.05  # for the whole report, split over its items (Bonferroni)
_NOISE_BUDGET = 0.05  # expected PSI of two same-population samples we accept from binning
_EPSILON = 1e-4  # keeps empty bins finite


def _missing(value) -> bool:
    """None, NaN or pandas' NA (which refuses to be compared)."""
    return value is None or type(value).__name__ == "NAType" or value != value


def _numeric(values: np.ndarray) -> bool:
    present = [v for v in values[:200] if not _missing(v)]
    return bool(present) and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
        for v in present
    )


def bins_for(n_reference: int, n_current: int, most: int = 10) -> int:
    """Quantile bins such that same-population noise stays within the budget."""
    if n_reference == 0 or n_current == 0:
        return 2
    noise_per_bin = 1 / n_reference + 1 / n_current
    return int(np.clip(np.floor(_NOISE_BUDGET / noise_per_bin) + 1, 2, most))


def _codes(reference, current) -> tuple[np.ndarray, np.ndarray]:
    """Bin codes of both samples: quantile bins for numbers, categories otherwise; missing
    values are a category of their own."""
    ref, cur = np.asarray(reference, dtype=object), np.asarray(current, dtype=object)
    if _numeric(ref):
        ref_f = np.array([np.nan if _missing(v) else float(v) for v in ref])
        cur_f = np.array([np.nan if _missing(v) else float(v) for v in cur])
        finite = ref_f[~np.isnan(ref_f)]
        bins = bins_for(len(ref), len(cur))
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))) if len(finite) else []
        inner = edges[1:-1] if len(edges) > 2 else np.array([])
        return (
            np.where(np.isnan(ref_f), -1, np.searchsorted(inner, ref_f, "right")).astype(str),
            np.where(np.isnan(cur_f), -1, np.searchsorted(inner, cur_f, "right")).astype(str),
        )
    return np.array([str(v) for v in ref]), np.array([str(v) for v in cur])


def _psi_of_codes(ref_codes: np.ndarray, cur_codes: np.ndarray) -> tuple[float, float]:
    """PSI and the chi-square p-value of the two samples' bin counts."""
    from scipy.stats import chi2_contingency

    categories = np.union1d(ref_codes, cur_codes)
    ref_counts = np.array([(ref_codes == c).sum() for c in categories])
    cur_counts = np.array([(cur_codes == c).sum() for c in categories])
    r = ref_counts / max(len(ref_codes), 1) + _EPSILON
    c = cur_counts / max(len(cur_codes), 1) + _EPSILON
    value = float(np.sum((c - r) * np.log(c / r)))
    if len(categories) < 2 or len(ref_codes) == 0 or len(cur_codes) == 0:
        return value, 1.0
    return value, float(chi2_contingency(np.vstack([ref_counts, cur_counts]))[1])


def psi(reference, current) -> float:
    """PSI of a numeric or categorical feature."""
    return _psi_of_codes(*_codes(reference, current))[0]


def ks(reference, current) -> float | None:
    """Two-sample Kolmogorov–Smirnov statistic of a numeric feature (None if not numeric)."""
    from scipy.stats import ks_2samp

    try:
        ref = np.array([np.nan if _missing(v) else float(v) for v in reference])
        cur = np.array([np.nan if _missing(v) else float(v) for v in current])
    except (TypeError, ValueError):
        return None
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    return float(ks_2samp(ref, cur).statistic)


def level(psi_value: float, p_value: float, tests: int = 1) -> str:
    if p_value >= FAMILY_SIGNIFICANCE / tests:
        return "ok"
    return "error" if psi_value >= ERROR_PSI else "warn" if psi_value >= WARN_PSI else "ok"


_ORDER = {"ok": 0, "warn": 1, "error": 2}


@dataclass(frozen=True)
class DriftReport:
    """Per item (feature, `has_*` flag, or `prediction`): psi, p_value, ks and level."""

    items: dict[str, dict]
    n_reference: int
    n_current: int

    @property
    def status(self) -> str:
        return max((v["level"] for v in self.items.values()), key=_ORDER.get, default="ok")

    @property
    def worst_psi(self) -> float:
        return max((v["psi"] for v in self.items.values()), default=0.0)

    def flagged(self) -> list[str]:
        return [name for name, v in self.items.items() if v["level"] != "ok"]


def drift_report(reference, current, columns: list[str]) -> DriftReport:
    """PSI (with significance) and KS per column, for two pandas frames."""
    items = {}
    for name in columns:
        ref = reference[name].to_numpy(dtype=object)
        cur = current[name].to_numpy(dtype=object)
        value, p_value = _psi_of_codes(*_codes(ref, cur))
        items[name] = {
            "psi": value,
            "p_value": p_value,
            "ks": ks(ref, cur) if _numeric(ref) else None,
            "level": level(value, p_value, len(columns)),
        }
    return DriftReport(items, len(reference), len(current))
