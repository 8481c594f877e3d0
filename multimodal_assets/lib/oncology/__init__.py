"""Precision oncology (decision support): multimodal patient profiles and similarity, and trial
screening from a CTML catalog with evidence traced to source records."""

from .profiles import PATIENT_PROFILES
from .screening import TRIAL_CANDIDATES, TRIAL_SCREENING

TABLES = (PATIENT_PROFILES, TRIAL_SCREENING, TRIAL_CANDIDATES)

__all__ = ["PATIENT_PROFILES", "TABLES", "TRIAL_CANDIDATES", "TRIAL_SCREENING"]
