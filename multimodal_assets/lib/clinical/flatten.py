"""Silver rows from FHIR resources: one flattener per resource type, then research keys and provenance."""

from __future__ import annotations

from collections.abc import Iterable

from ..governance.pseudonym import research_key
from . import fhir, units
from .fhir_time import parse_date, parse_datetime
from .vocabulary import ANTINEOPLASTIC_RXNORM


# ---- flatteners: one FHIR resource -> one silver row (without research key/provenance) -----
def _first_coding(concept: dict | None, system_hint: str | None = None) -> dict:
    codings = (concept or {}).get("coding") or []
    if system_hint:
        for coding in codings:
            if system_hint in (coding.get("system") or ""):
                return coding
        return {}
    return codings[0] if codings else {}


def _mrn(patient: dict) -> str | None:
    for ident in patient.get("identifier") or []:
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if fhir.MRN_TYPE_CODE in codes:
            return ident.get("value")
    return None


def _us_core_text(patient: dict, suffix: str) -> str | None:
    for ext in patient.get("extension") or []:
        if (ext.get("url") or "").endswith(suffix):
            for sub in ext.get("extension") or []:
                if sub.get("url") == "text":
                    return sub.get("valueString")
    return None


def _stage_group(condition: dict) -> str | None:
    for stage in condition.get("stage") or []:
        summary = stage.get("summary") or {}
        for text in [c.get("code") for c in summary.get("coding") or []] + [summary.get("text")]:
            group = stage_group_of(text)
            if group:
                return group
    return None


def stage_group_of(text: str | None) -> str | None:
    """'Stage IIIA', 'IIIB', 'IV' → 'III'/'IV'; None when it is not a stage."""
    if not text:
        return None
    token = text.upper().replace("STAGE", "").strip()
    for group in ("IV", "III", "II", "I"):
        if token.startswith(group):
            return group
    return None


def flatten_patient(res: dict) -> dict:
    name = next(iter(res.get("name") or []), {})
    address = next(iter(res.get("address") or []), {})
    phone = next(
        (t.get("value") for t in res.get("telecom") or [] if t.get("system") == "phone"), None
    )
    return {
        "fhir_patient_id": res.get("id"),
        "mrn": _mrn(res),
        "family_name": name.get("family"),
        "given_name": " ".join(name.get("given") or []) or None,
        "birth_date": parse_date(res.get("birthDate")),
        "sex": res.get("gender"),
        "race": _us_core_text(res, "us-core-race"),
        "deceased_date": parse_date(res.get("deceasedDateTime")),
        "address_line": " ".join(address.get("line") or []) or None,
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "phone": phone,
        "site": (res.get("managingOrganization") or {}).get("display"),
    }


def flatten_encounter(res: dict) -> dict:
    period = res.get("period") or {}
    encounter_type = _first_coding(next(iter(res.get("type") or []), None))
    return {
        "status": res.get("status"),
        "class_code": (res.get("class") or {}).get("code"),
        "type_code": encounter_type.get("code"),
        "type_display": encounter_type.get("display"),
        "start_time": parse_datetime(period.get("start")),
        "end_time": parse_datetime(period.get("end")),
        "service_site": (res.get("serviceProvider") or {}).get("display"),
    }


def flatten_condition(res: dict) -> dict:
    icd = _first_coding(res.get("code"), "icd-10")
    snomed = _first_coding(res.get("code"), "snomed")
    status = _first_coding(res.get("clinicalStatus"))
    icd_code = icd.get("code")
    return {
        "icd10_code": icd_code,
        "snomed_code": snomed.get("code"),
        "display": (res.get("code") or {}).get("text")
        or snomed.get("display")
        or icd.get("display"),
        "clinical_status": status.get("code"),
        "onset_date": parse_date(res.get("onsetDateTime")),
        "recorded_date": parse_date(res.get("recordedDate")),
        "stage_group": _stage_group(res),
        "is_nsclc": bool(icd_code and icd_code.upper().startswith("C34")),
    }


def flatten_observation(res: dict) -> dict:
    loinc = _first_coding(res.get("code"), "loinc")
    category = _first_coding(next(iter(res.get("category") or []), None))
    effective = res.get("effectiveDateTime") or (res.get("effectivePeriod") or {}).get("start")
    value_text = unit = None
    value = None
    quantity = res.get("valueQuantity")
    if quantity is not None and quantity.get("value") is not None:
        value_text = str(quantity["value"])
        value = float(quantity["value"])
        unit = quantity.get("code") or quantity.get("unit")
    elif res.get("valueInteger") is not None:
        value_text = str(res["valueInteger"])
        value = float(res["valueInteger"])
    concept = res.get("valueCodeableConcept")
    coded = _first_coding(concept)
    normalized, canonical_unit, converted = units.normalize(loinc.get("code"), value, unit)
    return {
        "loinc_code": loinc.get("code"),
        "display": (res.get("code") or {}).get("text") or loinc.get("display"),
        "category": category.get("code"),
        "effective_time": parse_datetime(effective or res.get("issued")),
        "value": normalized,
        "unit": canonical_unit,
        "value_original_text": value_text,
        "unit_original": unit,
        "unit_converted": converted,
        "value_code": coded.get("code"),
        "value_display": (concept or {}).get("text")
        or coded.get("display")
        or res.get("valueString"),
    }


def flatten_medication(res: dict) -> dict:
    rxnorm = _first_coding(res.get("medicationCodeableConcept"), "rxnorm")
    code = rxnorm.get("code")
    return {
        "rxnorm_code": code,
        "display": (res.get("medicationCodeableConcept") or {}).get("text")
        or rxnorm.get("display"),
        "status": res.get("status"),
        "intent": res.get("intent"),
        "authored_date": parse_date(res.get("authoredOn")),
        "is_antineoplastic": code in ANTINEOPLASTIC_RXNORM,
    }


def flatten_procedure(res: dict) -> dict:
    snomed = _first_coding(res.get("code"), "snomed")
    performed = res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start")
    return {
        "snomed_code": snomed.get("code"),
        "display": (res.get("code") or {}).get("text") or snomed.get("display"),
        "status": res.get("status"),
        "performed_date": parse_date(performed),
    }


def flatten_device_use(res: dict) -> dict:
    period = res.get("timingPeriod") or {}
    device = res.get("device") or {}
    return {
        "device_id": (device.get("identifier") or {}).get("value")
        or (device.get("reference") or "").split("/")[-1]
        or None,
        "period_start": parse_datetime(period.get("start")),
        "period_end": parse_datetime(period.get("end")),
        "status": res.get("status"),
    }


FLATTENERS = {
    "encounters": ("Encounter", flatten_encounter),
    "conditions": ("Condition", flatten_condition),
    "observations": ("Observation", flatten_observation),
    "medications": ("MedicationRequest", flatten_medication),
    "procedures": ("Procedure", flatten_procedure),
    "device_use": ("DeviceUseStatement", flatten_device_use),
}

# Latest delivery of each resource wins: re-sent bundles update rather than duplicate.
LATEST_RESOURCES_SQL = """
SELECT r.resource_json, r.patient_ref, r._source_sha256, r._source_locator
FROM bronze.fhir_resources r JOIN bronze.files f ON f.sha256 = r._source_sha256
WHERE r.resource_type = ? AND f.status = 'ingested'
QUALIFY row_number() OVER (PARTITION BY r.resource_type, r.resource_id
                           ORDER BY f.received_at DESC, f.path DESC) = 1
"""


def consent_by_patient(consents: Iterable[tuple[str, str]]) -> dict[str, dict]:
    """Latest research Consent per patient ref: permitted, withdrawn after permit, date."""
    history: dict[str, list] = {}
    for resource_json, patient_ref in consents:
        res = fhir.loads(resource_json)
        if res.get("status") != "active" or not patient_ref:
            continue
        decision = (res.get("provision") or {}).get("type")
        history.setdefault(patient_ref, []).append((parse_date(res.get("dateTime")), decision))
    out = {}
    for ref, decisions in history.items():
        decisions.sort(key=lambda d: (d[0] is None, d[0]))
        latest_date, latest = decisions[-1]
        permitted_before = any(d == "permit" for _, d in decisions[:-1])
        out[ref] = {
            "research_consent": latest == "permit",
            "consent_opt_out": latest == "deny" and permitted_before,
            "consent_date": latest_date,
        }
    return out


def patient_rows(patients, consents, run_id: str, key: bytes) -> list[dict]:
    """Silver patient rows; one per research key (the latest delivery of that patient wins)."""
    consent = consent_by_patient(consents)
    rows: dict[str, dict] = {}
    for resource_json, patient_ref, sha, locator in patients:
        row = flatten_patient(fhir.loads(resource_json))
        # Without an MRN the source's own Patient id is the stable identifier to pseudonymize.
        identifier = row["mrn"] or f"fhir-patient:{row['fhir_patient_id']}"
        row["research_key"] = research_key(identifier, key)
        row.update(
            consent.get(patient_ref)
            or {"research_consent": False, "consent_opt_out": False, "consent_date": None}
        )
        row.update(_source_sha256=sha, _source_locator=locator, _run_id=run_id)
        rows.setdefault(row["research_key"], row)
    return list(rows.values())


def child_rows(table_name: str, resources, key_by_patient_ref: dict[str, str], run_id: str):
    """Silver rows of a patient-linked resource type, and the count of orphans left in bronze."""
    _, flatten = FLATTENERS[table_name]
    rows, orphans = [], 0
    for resource_json, patient_ref, sha, locator in resources:
        key = key_by_patient_ref.get(patient_ref)
        if key is None:
            orphans += 1
            continue
        row = flatten(fhir.loads(resource_json))
        row.update(research_key=key, _source_sha256=sha, _source_locator=locator, _run_id=run_id)
        rows.append(row)
    return rows, orphans
