"""Write a synthetic cohort to landing (as delivered files) and its ground truth to truth/."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .cohort import AVAILABILITY_SHIFT_DATE, draw_cohort
from .fhir_bundles import render_patient
from .files import batch_folder, write_delivered
from .genomics import render_genomics
from .imaging import render_imaging
from .notes import render_notes
from .planted import write_planted
from .wearables import render_exports

RESOURCE_COUNTS = {
    "Encounter": "n_encounters",
    "Condition": "n_conditions",
    "Observation": "n_observations",
    "MedicationRequest": "n_medications",
    "Procedure": "n_procedures",
    "Consent": "n_consents",
    "DeviceUseStatement": "n_device_uses",
}


@dataclass(frozen=True)
class CohortSummary:
    patients: int
    files: int
    truth_dir: Path


def _encode(bundle: dict) -> bytes:
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()


RENDERED_MODALITIES = ("clinical", "wearables", "genomics", "imaging", "notes")


def generate(
    n_patients: int,
    seed: int,
    landing: Path,
    progress: bool | None = None,
    modalities: tuple[str, ...] = RENDERED_MODALITIES,
    ct_slices: int = 16,
    ct_matrix: int = 128,
) -> CohortSummary:
    """Draw the cohort, render the chosen modalities under landing/, truth to ../truth.

    The latent cohort is the same whichever modalities are rendered. Clinical bundles are
    always written: every other modality links to patients through them.
    """
    landing = Path(landing)
    truth_dir = landing.parent / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    cohort = draw_cohort(n_patients, seed)
    # Genomics and imaging render in two fresh processes while this one writes the clinical,
    # wearable and note files: each renderer draws from its own seeded stream, so the files are
    # the same as in one process, and the two cores both work. (pysam and cyvcf2 each bundle
    # their own htslib and have crashed a process that loaded both: the genomics files are
    # written where the ingest side never runs.)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as side:
        genomics_job = (
            side.submit(render_genomics, cohort, seed, landing / "genomics")
            if "genomics" in modalities
            else None
        )
        imaging_job = (
            side.submit(
                render_imaging,
                cohort,
                seed,
                landing / "imaging",
                slices=ct_slices,
                matrix=ct_matrix,
            )
            if "imaging" in modalities
            else None
        )
        summary = _render_in_this_process(cohort, seed, landing, truth_dir, progress, modalities)
        genomics_files = (
            _write_genomics_truth(genomics_job.result(), truth_dir) if genomics_job else []
        )
        imaging_files = _write_imaging_truth(imaging_job.result(), truth_dir) if imaging_job else []
    deliveries, wearable_files, note_files = summary
    write_planted(
        truth_dir,
        {f["kind"] for f in [*deliveries, *genomics_files, *imaging_files]},
        availability_shift=_has_availability_shift(cohort),
    )
    (truth_dir / "generator.json").write_text(
        json.dumps({"patients": n_patients, "seed": seed, "files": len(deliveries)}, indent=2)
    )
    return CohortSummary(
        n_patients,
        len(deliveries)
        + len(wearable_files)
        + len(genomics_files)
        + len(imaging_files)
        + len(note_files),
        truth_dir,
    )


def _has_availability_shift(cohort: pd.DataFrame) -> bool:
    index_dates = pd.to_datetime(cohort.index_date)
    shift = pd.Timestamp(AVAILABILITY_SHIFT_DATE)
    return bool((index_dates < shift).any() and (index_dates >= shift).any())


def _write_genomics_truth(rendered, truth_dir: Path) -> list[dict]:
    genomics_files, variants, dosages = rendered
    pd.DataFrame(dosages, columns=["mrn", "sample_id", "variant_id", "effect_dosage"]).to_parquet(
        truth_dir / "germline_dosages.parquet", index=False
    )
    pd.DataFrame(genomics_files).to_parquet(truth_dir / "genomics_deliveries.parquet", index=False)
    pd.DataFrame(
        variants, columns=["mrn", "sample_id", "chrom", "pos", "ref", "alt", "kind", "passed"]
    ).to_parquet(truth_dir / "genomics_variants.parquet", index=False)
    return genomics_files


def _write_imaging_truth(rendered, truth_dir: Path) -> list[dict]:
    imaging_files, series = rendered
    pd.DataFrame(imaging_files).to_parquet(truth_dir / "imaging_deliveries.parquet", index=False)
    pd.DataFrame(series).to_parquet(truth_dir / "imaging_series.parquet", index=False)
    return imaging_files


def _render_in_this_process(cohort, seed, landing, truth_dir, progress, modalities):
    """Clinical bundles (always), wearable exports and notes; their truth. Returns (clinical
    deliveries, wearable files, note files)."""
    n_patients = len(cohort)
    records = cohort.to_dict("records")
    deliveries: list[dict] = []
    counts = {col: np.zeros(n_patients, dtype=np.int64) for col in RESOURCE_COUNTS.values()}
    clinical = landing / "clinical"
    # A separate stream for file-level accidents keeps the cohort itself independent of them.
    accidents = np.random.default_rng([seed, 1])
    resend = set(accidents.choice(n_patients, max(1, n_patients // 100), replace=False).tolist())
    truncate = set(accidents.choice(n_patients, max(1, n_patients // 100), replace=False).tolist())

    for i, p in enumerate(
        tqdm(
            records,
            desc="rendering patients",
            unit="patient",
            disable=None if progress is None else not progress,
            mininterval=1.0,
        )
    ):
        rng = np.random.default_rng([seed, 2, i])
        for delivery in render_patient(p, rng):
            for rtype, col in RESOURCE_COUNTS.items():
                counts[col][i] += delivery.counts.get(rtype, 0)
            data = _encode(delivery.bundle)
            name = f"fhir-{p['patient_id']}-{delivery.kind}.json"
            folder = clinical / batch_folder(delivery.delivered_on)
            if delivery.kind == "followup" and i in truncate:
                # A failed transfer a week before the good one: quarantined, then superseded.
                early = delivery.delivered_on - timedelta(days=7)
                partial = clinical / batch_folder(early) / name.replace(".json", "-partial.json")
                write_delivered(partial, data[: len(data) // 2], early)
                deliveries.append(_row(partial, landing, "truncated", "quarantined", p, early))
            write_delivered(folder / name, data, delivery.delivered_on)
            deliveries.append(
                _row(folder / name, landing, delivery.kind, "ingested", p, delivery.delivered_on)
            )
            if delivery.kind == "baseline" and i in resend:
                later = delivery.delivered_on + timedelta(days=7)
                again = clinical / batch_folder(later) / name.replace(".json", "-resend.json")
                write_delivered(again, data, later)
                deliveries.append(_row(again, landing, "resend", "duplicate", p, later))
    deliveries.extend(_foreign_files(clinical, landing, seed))

    wearable_files = []
    if "wearables" in modalities:
        wearable_files = render_exports(
            cohort, seed, landing / "wearables", truth_dir / "wearable_events.parquet"
        )
        pd.DataFrame(
            [{**f, "path": f["path"].relative_to(landing).as_posix()} for f in wearable_files]
        ).to_parquet(truth_dir / "wearable_deliveries.parquet", index=False)
    note_files = []
    if "notes" in modalities:
        note_files, entities, identifiers = render_notes(cohort, seed, landing / "notes")
        pd.DataFrame(note_files).to_parquet(truth_dir / "notes_deliveries.parquet", index=False)
        pd.DataFrame(entities).to_parquet(truth_dir / "notes_entities.parquet", index=False)
        pd.DataFrame(identifiers).to_parquet(truth_dir / "notes_identifiers.parquet", index=False)
    truth = cohort.assign(**counts)
    truth.to_parquet(truth_dir / "patients.parquet", index=False)
    _write_screening_truth(cohort, truth_dir)
    write_board_list(cohort, landing / "tumor_board", BOARD_PATIENTS)
    pd.DataFrame(deliveries).to_parquet(truth_dir / "clinical_deliveries.parquet", index=False)
    return deliveries, wearable_files, note_files


BOARD_PATIENTS = 6
BOARD_MEETING = date(2024, 9, 26)  # after every generated index date and its deliveries


def write_board_list(cohort: pd.DataFrame, folder: Path, size: int, meeting=BOARD_MEETING) -> Path:
    """A tumor-board list (`<meeting-date>.csv`: patient MRN, presenting site) of `size`
    stage III/IV patients, most with imaging; the last is presented by another site."""
    advanced = cohort[cohort.stage_group.isin(("III", "IV"))].sort_values(
        ["has_imaging", "patient_id"], ascending=[False, True]
    )
    chosen = advanced.head(size)
    sites = list(chosen.site)
    if len(sites) > 1:
        sites[-1] = next(s for s in ("site_a", "site_b", "site_c") if s != sites[-1])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{meeting.isoformat()}.csv"
    lines = ["patient,site", *(f"{m},{s}" for m, s in zip(chosen.mrn, sites, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_screening_truth(cohort: pd.DataFrame, truth_dir: Path) -> None:
    """Each patient × trial arm × criterion of the bundled catalog, judged on the latent state
    (including what no delivered modality shows), and each arm's true eligibility; by MRN."""
    from ..oncology import evaluation, trials

    catalog = trials.load_catalog()
    criteria, arms = evaluation.truth_screening(catalog, cohort, list(cohort.mrn))
    criteria = criteria.rename(columns={"research_key": "mrn", "evidence_value": "true_value"})
    columns = ["mrn", "trial_id", "arm_id", "criterion_id", "status", "true_value"]
    version = trials.catalog_version()
    criteria[columns].assign(catalog_version=version).to_parquet(
        truth_dir / "trial_criteria.parquet", index=False
    )
    arms.rename(columns={"research_key": "mrn"})[["mrn", "trial_id", "arm_id", "status"]].assign(
        catalog_version=version
    ).to_parquet(truth_dir / "trial_eligibility.parquet", index=False)


def _row(path: Path, landing: Path, kind: str, expected: str, p: dict | None, day: date) -> dict:
    return {
        "path": path.relative_to(landing).as_posix(),
        "kind": kind,
        "expected_status": expected,
        "mrn": p["mrn"] if p else None,
        "delivered_on": day,
    }


def _foreign_files(clinical: Path, landing: Path, seed: int) -> list[dict]:
    """Files every real feed eventually sends: binary junk, an XML bundle, invalid R4."""
    rng = np.random.default_rng([seed, 3])
    day = date(2023, 3, 6)
    folder = clinical / batch_folder(day)
    junk = folder / "transfer-0001.json"
    write_delivered(junk, rng.bytes(2048), day)
    xml = folder / "export-0002.xml"
    write_delivered(
        xml,
        b'<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir">'
        b'<type value="collection"/></Bundle>',
        day,
    )
    invalid = folder / "fhir-invalid-birthdate.json"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": "invalid-r4-example",
                    "gender": "female",
                    "birthDate": "1961-04-02T00:00:00Z",
                    "name": [{"family": ["Doe"], "given": ["Jane"]}],
                }
            }
        ],
    }
    write_delivered(invalid, _encode(bundle), day)
    return [
        _row(junk, landing, "garbage", "quarantined", None, day),
        _row(xml, landing, "xml", "quarantined", None, day),
        _row(invalid, landing, "invalid_r4", "quarantined", None, day),
    ]
