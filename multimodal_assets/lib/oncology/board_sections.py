"""What a tumor-board packet states about one patient, section by section, gathered from the
records dated by the meeting: each statement a `Fact` with the record it came from."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ..genomics import reference
from .board import (
    IDENTIFIER_COLUMNS,
    LOOKED_IN,
    Fact,
    Packet,
    derived_fact,
    query_one,
    query_rows,
    record_fact,
)
from .facts import first_instances_sql, years_between
from .profiles import MODALITIES
from .search import MIN_HIDDEN
from .similarity import Profiles


def gather(conn, research_key: str, meeting: date, landing: Path, profiles=None) -> Packet:
    """Everything the packet states about one patient, from records dated by the meeting
    (`landing`: where the landed files are, for the key slice's pixels; `profiles`: every
    patient's profile, loaded once per meeting)."""
    p = {"rk": research_key, "day": meeting}
    patient = query_one(
        conn,
        "SELECT p.*, c.index_date FROM silver.patients p LEFT JOIN gold.clinical_features c "
        "USING (research_key) WHERE p.research_key = $rk",
        {"rk": research_key},
    )
    if patient is None:
        raise KeyError("no such patient")
    packet = Packet(
        research_key,
        meeting,
        patient["site"],
        bool(patient["research_consent"] and not patient["consent_opt_out"]),
    )
    _header(packet, patient, meeting)
    _diagnosis(conn, packet, p)
    _timeline(conn, packet, p)
    _molecular(conn, packet, p)
    _imaging(conn, packet, p, landing)
    _risk(conn, packet, research_key)
    _similar(conn, packet, research_key, profiles or Profiles.read(conn))
    _trials(conn, packet, research_key)
    _completeness(conn, packet, research_key, meeting)
    return packet


def _header(packet: Packet, patient: dict, meeting: date) -> None:
    from .facts import age_text

    packet.identifiers = {k: patient[k] for k in IDENTIFIER_COLUMNS}
    name = f"{patient['given_name'] or ''} {patient['family_name'] or ''}".strip()
    packet.identity = {
        "Name": record_fact(patient, name),
        "MRN": record_fact(patient, patient["mrn"]),
        "Date of birth": record_fact(patient, "", patient["birth_date"]),
    }
    born = patient["birth_date"]
    if born:
        age = years_between(born, meeting)
        packet.header["Age"] = record_fact(patient, age_text(age).removeprefix("age "))
    packet.header["Sex"] = record_fact(patient, patient["sex"] or "unknown")
    packet.header["Site"] = record_fact(patient, patient["site"])


def _diagnosis(conn, packet: Packet, p: dict) -> None:
    from ..clinical.vocabulary import HISTOLOGY_BY_SNOMED, LOINC

    for row in query_rows(
        conn,
        "SELECT * FROM silver.conditions WHERE research_key = $rk AND is_nsclc "
        "AND onset_date <= $day ORDER BY onset_date, _source_sha256, _source_locator LIMIT 1",
        p,
    ):
        histology = HISTOLOGY_BY_SNOMED.get(row["snomed_code"], "NSCLC").replace("_", " ")
        packet.diagnosis.append(record_fact(row, f"Diagnosis: {row['display']}", row["onset_date"]))
        packet.diagnosis.append(record_fact(row, f"Histology: {histology}"))
        packet.diagnosis.append(record_fact(row, f"Stage: {row['stage_group'] or 'not recorded'}"))
    for row in query_rows(
        conn,
        "SELECT *, CAST(effective_time AS DATE) AS day FROM silver.observations "
        f"WHERE research_key = $rk AND loinc_code = '{LOINC['ecog']}' "
        "AND CAST(effective_time AS DATE) <= $day ORDER BY effective_time DESC, _source_sha256, "
        "_source_locator LIMIT 1",
        p,
    ):
        packet.diagnosis.append(record_fact(row, f"ECOG: {int(row['value'])}", row["day"]))
    orders = query_rows(
        conn,
        "SELECT * FROM silver.medications WHERE research_key = $rk AND is_antineoplastic "
        "AND authored_date <= $day ORDER BY authored_date, display, _source_sha256, _source_locator",
        p,
    )
    # Drugs started within 21 days of each other make one line of therapy.
    line, start = 0, None
    for row in orders:
        if start is None or (row["authored_date"] - start).days > 21:
            line, start = line + 1, row["authored_date"]
        packet.therapy.append(
            record_fact(
                row, f"Line {line}: {row['display']} ({row['status']})", row["authored_date"]
            )
        )


def _timeline(conn, packet: Packet, p: dict) -> None:
    events = []
    for table, day, text in (
        ("silver.conditions", "onset_date", "display"),
        ("silver.procedures", "performed_date", "display"),
        ("silver.medications", "authored_date", "display"),
    ):
        for row in query_rows(
            conn,
            f"SELECT *, {day} AS day, {text} AS what FROM {table} "
            f"WHERE research_key = $rk AND {day} <= $day",
            p,
        ):
            events.append(record_fact(row, f"{row['what']} (EHR)", row["day"]))
    # Note events: affirmed mentions only; negated, hypothetical, family and uncertain are left out.
    for row in query_rows(
        conn,
        "SELECT *, coalesce(entity_date, note_date) AS day FROM silver.note_entities "
        "WHERE research_key = $rk AND note_date <= $day AND NOT (negated OR hypothetical OR "
        "family OR uncertain) AND label IN ('DIAGNOSIS', 'TREATMENT', 'BIOMARKER', 'STAGE')",
        p,
    ):
        concept = row["concept"].replace("_", " ")
        events.append(record_fact(row, f"{concept} ({row['label'].lower()}, note)", row["day"]))
    packet.timeline = sorted(
        events, key=lambda f: (f.on or date.min, f.text, f.sha256 or "", f.locator or "")
    )


def _molecular(conn, packet: Packet, p: dict) -> None:
    hotspots = {h.biomarker: h for h in reference.hotspots()}
    sample = query_one(
        conn,
        "SELECT s.sample_id, s.collected_on, f._source_sha256, f._source_locator "
        "FROM silver.genomic_samples s JOIN bronze.file_samples f USING (sample_id) "
        "WHERE s.research_key = $rk AND s.sample_type = 'tumor' AND s.in_file "
        "AND s.collected_on <= $day ORDER BY s.collected_on DESC, f.received_at DESC, s.sample_id, "
        "f._source_sha256 LIMIT 1",
        p,
    )
    if sample is None:
        return
    packet.molecular.append(
        record_fact(
            sample,
            f"Tumor sample sequenced ({len(reference.panel())}-region panel)",
            sample["collected_on"],
        )
    )
    for row in query_rows(
        conn,
        "SELECT * FROM silver.somatic_variants WHERE research_key = $rk AND sample_id = $sample "
        "AND passed AND biomarker IS NOT NULL ORDER BY gene, pos, ref, alt, _source_sha256",
        {"rk": p["rk"], "sample": sample["sample_id"]},
    ):
        h = hotspots.get(row["biomarker"])
        hgvs = f"{h.hgvs_genomic} / {h.hgvs_coding}" if h else f"{row['chrom']}:{row['pos']}"
        action = "actionable" if h and h.actionable else "not actionable"
        packet.molecular.append(
            record_fact(
                row,
                f"{row['gene']} {h.protein_change if h else ''} — {hgvs} — {action} "
                f"(VAF {row['allele_fraction'] or 0:.2f})",
            )
        )
    features = query_one(
        conn,
        "SELECT tmb_per_mb, prs_z FROM gold.genomics_features WHERE research_key = $rk",
        {"rk": p["rk"]},
    )
    if features and features["tmb_per_mb"] is not None:
        packet.molecular.append(
            Fact(
                f"TMB: {features['tmb_per_mb']:g} mutations/Mb",
                sample["_source_sha256"],
                sample["_source_locator"],
            )
        )
    if features and features["prs_z"] is not None:
        packet.molecular.append(
            derived_fact(
                conn,
                "gold.genomics_features.prs_z",
                p["rk"],
                f"Polygenic score: {features['prs_z']:+.2f} SD",
            )
        )


def _imaging(conn, packet: Packet, p: dict, landing: Path) -> None:
    series = query_rows(
        conn,
        f"SELECT f.*, x.sha256 AS _source_sha256, x.locator AS _source_locator "
        f"FROM gold.imaging_series_features f JOIN ({first_instances_sql('WHERE research_key = $rk')}) x "
        "USING (series_uid) "
        "WHERE f.research_key = $rk AND f.acquired_on <= $day ORDER BY f.acquired_on, f.series_uid",
        p,
    )
    for row in series:
        size = (
            f"lesion {row['lesion_diameter_mm']:.0f} mm, {row['lesion_volume_ml']:.1f} ml, "
            f"mean {row['lesion_mean_hu']:.0f} HU"
            if row["lesion_found"]
            else "no lesion found"
        )
        packet.imaging.append(
            record_fact(
                row,
                f"{row['modality']} series: {size} ({row['instances_decoded']} slices)",
                row["acquired_on"],
            )
        )
    ct = [r for r in series if r["modality"] == "CT" and r["lesion_found"]]
    if ct:
        packet.thumbnail = _key_slice(conn, ct[-1], landing)


def _key_slice(conn, row: dict, landing: Path) -> tuple[bytes, Fact] | None:
    from ..imaging.thumbnail import key_slice_png

    files = query_rows(
        conn,
        "SELECT f.path, i.slice_thickness_mm, i.pixel_spacing_mm, coalesce(json_extract_string("
        "i.deidentified_header, '$.\"00280301\".Value[0]') = 'YES', false) AS burned_in "
        "FROM silver.imaging_instances i JOIN bronze.files f ON f.sha256 = i._source_sha256 "
        "AND f.status = 'ingested' WHERE i.series_uid = $series ORDER BY i.instance_number",
        {"series": row["series_uid"]},
    )
    # De-identification cleans headers, not pixels: a series whose pixels may show burned-in
    # text (BurnedInAnnotation YES) gets no picture.
    if not files or any(f["burned_in"] for f in files):
        return None
    spacing = files[0]["pixel_spacing_mm"] or [1.0, 1.0]
    voxel = (files[0]["slice_thickness_mm"] or 1.0, float(spacing[0]), float(spacing[1]))
    rendered = key_slice_png([landing / f["path"] for f in files], voxel)
    if rendered is None:
        return None
    png, diameter = rendered
    return png, record_fact(
        row, f"Key slice, lesion outlined ({diameter:.0f} mm on this slice)", row["acquired_on"]
    )


def _risk(conn, packet: Packet, key: str) -> None:
    row = query_one(conn, "SELECT * FROM gold.risk_scores WHERE research_key = $rk", {"rk": key})
    if row is None:
        return
    used = (row["modalities_used"] or "").split("+")
    packet.risk.append(
        derived_fact(
            conn,
            "gold.risk_scores.risk_score",
            key,
            f"12-month progression risk {row['risk_score']:.2f} (model {row['model_version']},"
            f" {row['strategy']} fusion)",
        )
    )
    for modality in MODALITIES:
        value = row.get(f"contribution_{modality}")
        if modality in used and value is not None:
            packet.risk.append(
                derived_fact(
                    conn,
                    f"gold.risk_scores.contribution_{modality}",
                    key,
                    f"{modality}: {value:+.2f} on the logit",
                )
            )
    packet.risk_missing = [m for m in MODALITIES if m not in used]


def _similar(conn, packet: Packet, key: str, profiles) -> None:
    from .similarity import exact_search, outcomes_among

    if key not in set(profiles.keys) or len(profiles) <= MIN_HIDDEN:
        return
    hits = exact_search(profiles, profiles.index_of(key), 10)
    keys = [h.research_key for h in hits]
    o = outcomes_among(conn, keys)
    compared = sorted({m for h in hits for m in h.compared})
    rate = "n/a" if o["progression_rate_12m"] is None else f"{o['progression_rate_12m']:.2f}"
    packet.similar.append(
        derived_fact(
            conn,
            "gold.patient_profiles.clinical_vector",
            key,
            f"{len(hits)} most similar patients (compared on {', '.join(compared)}): "
            f"12-month progression or death {rate} (95% CI {o['ci_low']:.2f}–"
            f"{o['ci_high']:.2f}, n = {o['with_outcome']})",
        )
    )


def _trials(conn, packet: Packet, key: str) -> None:
    arms = query_rows(
        conn,
        "SELECT * FROM gold.trial_candidates WHERE research_key = $rk "
        "AND status <> 'not_eligible' ORDER BY status, trial_id, arm_id",
        {"rk": key},
    )
    for arm in arms:
        criteria = query_rows(
            conn,
            "SELECT * FROM gold.trial_screening WHERE research_key = $rk AND trial_id = $t "
            "AND arm_id = $a ORDER BY criterion_id",
            {"rk": key, "t": arm["trial_id"], "a": arm["arm_id"]},
        )
        packet.trials.append(
            {
                "arm": f"{arm['trial_id']} arm {arm['arm_id']}",
                "status": arm["status"].replace("_", " "),
                "criteria": [
                    record_fact(
                        c,
                        f"{c['criterion_id']}: {c['status'].replace('_', ' ')} — "
                        f"{c['evidence_value']}",
                        c["evidence_date"],
                    )
                    for c in criteria
                    if c["status"] != "unknown"
                ],
                "questions": [c["question"] for c in criteria if c["status"] == "unknown"],
            }
        )


def _completeness(conn, packet: Packet, key: str, meeting: date) -> None:
    from .profiles import PATIENT_PROFILES

    row = query_one(
        conn, f"SELECT * FROM {PATIENT_PROFILES.fqn} WHERE research_key = $rk", {"rk": key}
    )
    for modality in MODALITIES:
        if row and row[f"has_{modality}"]:
            fact = derived_fact(
                conn,
                f"{PATIENT_PROFILES.fqn}.{modality}_vector",
                key,
                f"{modality}: data through",
                row[f"{modality}_data_through"],
            )
            packet.completeness.append((modality, fact, LOOKED_IN[modality]))
        else:
            packet.completeness.append((modality, None, LOOKED_IN[modality]))
