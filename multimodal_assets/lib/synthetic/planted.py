"""Faults the generator plants on purpose, recorded in its truth with the check that must flag
each, so that the main job can tell a planted fault found from an unexpected failure."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .cohort import AVAILABILITY_SHIFT_DATE

PLANTED_FILE = "planted_faults.json"


@dataclass(frozen=True)
class PlantedFault:
    kind: str
    modality: str
    what: str
    flagged_by: str  # the asset check, "<asset key>:<check name>", whose failure finds it


# The delivery kinds in the generator's truth that are planted faults a check must flag (files
# that must be quarantined are counted by the quarantine, not by a check).
_DELIVERY_FAULTS = {
    "unknown_sample": PlantedFault(
        "unknown_sample",
        "genomics",
        "a somatic VCF delivered for a sample no manifest lists (never linked to a patient)",
        "silver/genomic_samples:file_samples_mapped_to_patients",
    ),
    "truncated_pixels": PlantedFault(
        "truncated_pixels",
        "imaging",
        "one CT slice cut short in transit (its series has a gap)",
        "silver/imaging_series:geometry_sane",
    ),
}
AVAILABILITY_SHIFT = PlantedFault(
    "availability_shift",
    "wearables",
    f"more patients indexed from {AVAILABILITY_SHIFT_DATE} have wearables and genomics "
    "(the scoring population drifts from the training population)",
    "gold/risk_scores:scoring_population_drift",
)
KNOWN_FAULTS = (*_DELIVERY_FAULTS.values(), AVAILABILITY_SHIFT)


def write_planted(truth_dir: Path, delivery_kinds: set[str], availability_shift: bool) -> None:
    """Record which of the known faults this cohort holds."""
    planted = [_DELIVERY_FAULTS[k] for k in sorted(delivery_kinds & _DELIVERY_FAULTS.keys())]
    if availability_shift:
        planted.append(AVAILABILITY_SHIFT)
    (truth_dir / PLANTED_FILE).write_text(json.dumps([asdict(f) for f in planted], indent=2))


def read_planted(truth_dir: Path) -> list[PlantedFault]:
    """The faults the generator planted in the landed cohort; none without its truth."""
    path = truth_dir / PLANTED_FILE
    return [PlantedFault(**f) for f in json.loads(path.read_text())] if path.exists() else []


@dataclass(frozen=True)
class CheckFailures:
    found: list[PlantedFault]  # planted and flagged by its check
    unflagged: list[PlantedFault]  # planted, but its check passed
    unexpected: list[str]  # failed checks that no planted fault explains


def classify_failures(failed_checks: list[str], planted: list[PlantedFault]) -> CheckFailures:
    """Match each failed check ("<asset key>:<check name>") to the fault planted for it."""
    failed = set(failed_checks)
    explained = {f.flagged_by for f in planted}
    return CheckFailures(
        found=[f for f in planted if f.flagged_by in failed],
        unflagged=[f for f in planted if f.flagged_by not in failed],
        unexpected=sorted(failed - explained),
    )
