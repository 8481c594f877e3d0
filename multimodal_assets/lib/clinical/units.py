"""Canonical UCUM units per LOINC lab code, and the conversions sites actually send us."""

from __future__ import annotations

# loinc -> (canonical unit, {delivered unit: factor to canonical})
CANONICAL_UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "718-7": ("g/dL", {"g/dL": 1.0, "g/L": 0.1, "mmol/L": 1.611}),  # hemoglobin
    "1751-7": ("g/dL", {"g/dL": 1.0, "g/L": 0.1}),  # albumin
    "2532-0": ("U/L", {"U/L": 1.0, "µkat/L": 60.0, "ukat/L": 60.0}),  # LDH
    "1988-5": ("mg/L", {"mg/L": 1.0, "mg/dL": 10.0}),  # CRP
    "29463-7": ("kg", {"kg": 1.0, "[lb_av]": 0.45359237, "g": 0.001}),  # body weight
    "8302-2": ("cm", {"cm": 1.0, "[in_i]": 2.54, "m": 100.0}),  # body height
}


def normalize(
    loinc: str | None, value: float | None, unit: str | None
) -> tuple[float | None, str | None, bool]:
    """(value, unit, converted) in the canonical unit; unknown codes/units pass through unchanged."""
    if value is None or loinc not in CANONICAL_UNITS:
        return value, unit, False
    canonical, factors = CANONICAL_UNITS[loinc]
    factor = factors.get(unit or "")
    if factor is None:
        return value, unit, False
    return value * factor, canonical, factor != 1.0
