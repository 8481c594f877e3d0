"""Render each patient's latent truth as FHIR R4 transaction bundles: a baseline delivery shortly
after diagnosis and a follow-up delivery a year later (treatment, later labs, progression)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.7777.1"  # a made-up hospital MRN namespace
DEVICE_SYSTEM = "urn:oid:2.16.840.1.113883.3.7777.2"  # made-up wearable serial namespace
_NAMESPACE = uuid.UUID("6f1c2f3e-9a57-4b7e-9d61-2b7c1a3e5d40")

HISTOLOGY_SNOMED = {
    "adenocarcinoma": ("254626006", "Adenocarcinoma of lung"),
    "squamous_cell": ("254634000", "Squamous cell carcinoma of lung"),
    "nsclc_nos": ("254637007", "Non-small cell lung cancer"),
}
LUNG_SITES = (
    ("C34.11", "right upper lobe"),
    ("C34.12", "left upper lobe"),
    ("C34.2", "middle lobe"),
    ("C34.31", "right lower lobe"),
    ("C34.32", "left lower lobe"),
    ("C34.90", "unspecified part of lung"),
)
SMOKING_SNOMED = {
    "current": ("77176002", "Smoker"),
    "former": ("8517006", "Ex-smoker"),
    "never": ("266919005", "Never smoked tobacco"),
}
STAGE_DETAIL = {
    "I": ("IA", "IB"),
    "II": ("IIA", "IIB"),
    "III": ("IIIA", "IIIB", "IIIC"),
    "IV": ("IVA", "IVB"),
}
# (icd10, snomed, display, rxnorm, drug, smoker-only)
COMORBIDITIES = (
    ("J44.9", "13645005", "Chronic obstructive lung disease", "274783", "tiotropium", True),
    ("I10", "38341003", "Hypertensive disorder", "29046", "lisinopril", False),
    ("E11.9", "44054006", "Diabetes mellitus type 2", "6809", "metformin", False),
    ("E78.5", "55822004", "Hyperlipidemia", "83367", "atorvastatin", False),
)
METASTASES = (
    ("C79.31", "94225005", "Secondary malignant neoplasm of brain"),
    ("C79.51", "94222008", "Secondary malignant neoplasm of bone"),
    ("C78.7", "94381002", "Secondary malignant neoplasm of liver"),
)
FIRST_LINE = {
    "EGFR": (("1721560", "osimertinib"),),
    "ALK": (("1727455", "alectinib"),),
    "adenocarcinoma": (
        ("40048", "carboplatin"),
        ("68446", "pemetrexed"),
        ("1547545", "pembrolizumab"),
    ),
    "other": (("40048", "carboplatin"), ("1547545", "pembrolizumab")),
}
# RxNorm ingredients of the drugs some patients had before the index date (cohort.py).
PRIOR_DRUG_RXNORM = {
    "carboplatin": "40048",
    "cisplatin": "2555",
    "pemetrexed": "68446",
    "paclitaxel": "56946",
    "pembrolizumab": "1547545",
    "durvalumab": "1919503",
}
# Sites report some labs in their own units; silver must normalize them.
SITE_UNITS = {
    "site_b": {"718-7": ("g/L", 10.0), "29463-7": ("[lb_av]", 1 / 0.45359237)},
    "site_c": {"1988-5": ("mg/dL", 0.1)},
}
LABS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "hemoglobin_g_dl", 1),
    ("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", "albumin_g_dl", 1),
    (
        "2532-0",
        "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        "ldh_u_l",
        0,
    ),
    ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", "crp_mg_l", 1),
)
SITE_NAMES = {
    "site_a": "Northshore Cancer Center",
    "site_b": "Valley Regional Hospital",
    "site_c": "Harbor Community Oncology",
}


@dataclass
class Delivery:
    kind: str  # baseline | followup
    delivered_on: date
    bundle: dict
    counts: dict[str, int] = field(default_factory=dict)


class _Builder:
    """Collects the resources of one bundle with deterministic ids and urn:uuid full URLs."""

    def __init__(self, patient_id: str, kind: str):
        self.patient_id = patient_id
        self.kind = kind
        self.entries: list[dict] = []
        self._n = 0

    def new_id(self) -> str:
        self._n += 1
        return str(uuid.uuid5(_NAMESPACE, f"{self.patient_id}/{self.kind}/{self._n}"))

    def add(self, resource: dict) -> dict:
        rtype, rid = resource["resourceType"], resource["id"]
        self.entries.append(
            {
                "fullUrl": f"urn:uuid:{rid}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
            }
        )
        return resource

    def bundle(self) -> dict:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.entries:
            rtype = entry["resource"]["resourceType"]
            out[rtype] = out.get(rtype, 0) + 1
        return out


def _ts(day: date, rng: np.random.Generator) -> str:
    # Daytime local times with a US offset: the UTC date stays the calendar date.
    return (
        f"{day.isoformat()}T{int(rng.integers(8, 16)):02d}:{int(rng.integers(0, 60)):02d}:00-05:00"
    )


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _patient(p, deceased_on: date | None) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": p["patient_id"],
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [{"url": "text", "valueString": p["race"]}],
            }
        ],
        "identifier": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical Record Number",
                        }
                    ]
                },
                "system": MRN_SYSTEM,
                "value": p["mrn"],
            }
        ],
        "name": [
            {"use": "official", "family": p["family_name"], "given": p["given_name"].split(" ")}
        ],
        "telecom": [{"system": "phone", "value": p["phone"], "use": "home"}],
        "gender": p["sex"],
        "birthDate": p["birth_date"].isoformat(),
        "address": [
            {
                "line": [p["address_line"]],
                "city": p["city"],
                "state": p["state"],
                "postalCode": p["postal_code"],
                "country": "US",
            }
        ],
        "managingOrganization": {"display": p["site"]},
    }
    if deceased_on is not None:
        resource["deceasedDateTime"] = deceased_on.isoformat()
    return resource


def _encounter(b: _Builder, subject: str, p, day: date, rng, type_code: str, type_display: str):
    start = _ts(day, rng)
    return b.add(
        {
            "resourceType": "Encounter",
            "id": b.new_id(),
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "type": [_concept(SNOMED, type_code, type_display)],
            "subject": {"reference": subject},
            "period": {"start": start, "end": start[:11] + "17:00:00-05:00"},
            "serviceProvider": {"display": SITE_NAMES[p["site"]]},
        }
    )


def _observation(
    b: _Builder,
    subject: str,
    encounter: dict | None,
    when: str,
    loinc: str,
    display: str,
    *,
    value=None,
    unit=None,
    integer=None,
    concept=None,
    category="laboratory",
) -> None:
    resource = {
        "resourceType": "Observation",
        "id": b.new_id(),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": _concept(LOINC, loinc, display),
        "subject": {"reference": subject},
        "effectiveDateTime": when,
    }
    if encounter is not None:
        resource["encounter"] = {"reference": f"urn:uuid:{encounter['id']}"}
    if value is not None:
        resource["valueQuantity"] = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    if integer is not None:
        resource["valueInteger"] = integer
    if concept is not None:
        resource["valueCodeableConcept"] = concept
    b.add(resource)


def _lab(b, subject, encounter, when, p, loinc, display, unit, value, decimals) -> None:
    unit_out, factor = SITE_UNITS.get(p["site"], {}).get(loinc, (unit, 1.0))
    # A smaller unit keeps the same precision with one more decimal place, as labs report it.
    decimals += factor < 1
    shown = round(value * factor, decimals) if decimals else int(round(value * factor))
    _observation(b, subject, encounter, when, loinc, display, value=shown, unit=unit_out)


def _condition(b, subject, icd, snomed, display, onset: date, stage: str | None = None):
    resource = {
        "resourceType": "Condition",
        "id": b.new_id(),
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [
                {"system": ICD10, "code": icd, "display": display},
                {"system": SNOMED, "code": snomed, "display": display},
            ],
            "text": display,
        },
        "subject": {"reference": subject},
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
    }
    if stage:
        resource["stage"] = [
            {
                "summary": {
                    "coding": [
                        {
                            "system": "https://cancerstaging.org",
                            "code": stage,
                            "display": f"Stage {stage}",
                        }
                    ],
                    "text": f"Stage {stage}",
                }
            }
        ]
    b.add(resource)


def _medication(b, subject, rxnorm, name, day: date, status="active"):
    b.add(
        {
            "resourceType": "MedicationRequest",
            "id": b.new_id(),
            "status": status,
            "intent": "order",
            "medicationCodeableConcept": _concept(RXNORM, rxnorm, name),
            "subject": {"reference": subject},
            "authoredOn": day.isoformat(),
        }
    )


def _procedure(b, subject, snomed, display, day: date, rng):
    b.add(
        {
            "resourceType": "Procedure",
            "id": b.new_id(),
            "status": "completed",
            "code": _concept(SNOMED, snomed, display),
            "subject": {"reference": subject},
            "performedDateTime": _ts(day, rng),
        }
    )


def _consent(b, subject, decision: str, day: date):
    b.add(
        {
            "resourceType": "Consent",
            "id": b.new_id(),
            "status": "active",
            "scope": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                        "code": "research",
                    }
                ]
            },
            "category": [{"coding": [{"system": LOINC, "code": "57016-8"}]}],
            "patient": {"reference": subject},
            "dateTime": day.isoformat(),
            "provision": {"type": decision},
        }
    )


def _device_use(b: _Builder, subject: str, p) -> None:
    """The EHR's record of which wearable the patient wore when: the device-to-patient link."""
    b.add(
        {
            "resourceType": "DeviceUseStatement",
            "id": b.new_id(),
            "status": "completed",
            "subject": {"reference": subject},
            "device": {"identifier": {"system": DEVICE_SYSTEM, "value": p["device_id"]}},
            "timingPeriod": {
                "start": p["wearable_start"].isoformat(),
                "end": p["wearable_end"].isoformat(),
            },
        }
    )


def render_patient(p: dict, rng: np.random.Generator) -> list[Delivery]:
    """The baseline and follow-up bundles of one patient, rendered from the latent row `p`."""
    index: date = p["index_date"]
    days = lambda n: index + timedelta(days=int(n))  # noqa: E731

    # ---- baseline: history up to and including the diagnosis --------------------------
    base = _Builder(p["patient_id"], "baseline")
    subject = f"urn:uuid:{p['patient_id']}"
    base.add(_patient(p, None))
    _consent(
        base, subject, "permit" if p["research_consent"] else "deny", days(-rng.integers(0, 10))
    )
    if isinstance(p["device_id"], str):
        _device_use(base, subject, p)
    weight_at_index = float(p["weight_kg"])
    # The only weight inside the 180-day window sets the weight-change feature exactly.
    weight_before = weight_at_index / (1 + p["weight_change_pct_180d"] / 100)
    for visit in range(1 + int(rng.poisson(1.5))):
        offset = -rng.integers(90, 170) if visit == 0 else -rng.integers(200, 700)
        enc = _encounter(base, subject, p, days(offset), rng, "185347001", "Encounter for problem")
        w = weight_before if visit == 0 else weight_before * rng.normal(1.0, 0.02)
        _lab(base, subject, enc, enc["period"]["start"], p, "29463-7", "Body weight", "kg", w, 1)
    for icd, snomed, display, rxnorm, drug, smokers_only in COMORBIDITIES:
        if smokers_only and p["smoking_status"] == "never":
            continue
        if rng.random() < 0.3:
            onset = days(-rng.integers(400, 4000))
            _condition(base, subject, icd, snomed, display, onset)
            _medication(base, subject, rxnorm, drug, onset + timedelta(days=14))
    _procedure(
        base, subject, "169069000", "Computed tomography of chest", days(-rng.integers(5, 20)), rng
    )
    dx = _encounter(base, subject, p, index, rng, "185347001", "Encounter for problem")
    when = dx["period"]["start"]
    _procedure(base, subject, "10847001", "Bronchoscopy", index, rng)
    icd_site, lobe = LUNG_SITES[int(rng.integers(0, len(LUNG_SITES)))]
    hist_code, hist_display = HISTOLOGY_SNOMED[p["histology"]]
    stage_detail = STAGE_DETAIL[p["stage_group"]]
    _condition(
        base,
        subject,
        icd_site,
        hist_code,
        f"{hist_display}, {lobe}",
        index,
        stage=stage_detail[int(rng.integers(0, len(stage_detail)))],
    )
    for loinc, display, unit, column, decimals in LABS:
        _lab(base, subject, dx, when, p, loinc, display, unit, float(p[column]), decimals)
    _lab(base, subject, dx, when, p, "29463-7", "Body weight", "kg", weight_at_index, 1)
    _observation(
        base,
        subject,
        dx,
        when,
        "89247-1",
        "ECOG performance status score",
        integer=int(p["ecog"]),
        category="survey",
    )
    for drug, before, ordered in zip(
        p["prior_treatments"],
        p["prior_treatment_days_before"],
        p["prior_treatment_ordered"],
        strict=True,
    ):
        if ordered:
            _medication(base, subject, PRIOR_DRUG_RXNORM[drug], drug, days(-before), "completed")
    smoke_code, smoke_display = SMOKING_SNOMED[p["smoking_status"]]
    _observation(
        base,
        subject,
        dx,
        when,
        "72166-2",
        "Tobacco smoking status",
        concept=_concept(SNOMED, smoke_code, smoke_display),
        category="social-history",
    )

    # ---- follow-up: treatment, later labs and the outcome (never features) ------------
    follow = _Builder(p["patient_id"], "followup")
    ref = f"Patient/{p['patient_id']}"
    deceased_on = days(p["death_days"]) if p["died"] else None
    follow.add(_patient(p, deceased_on))
    regimen_key = (
        p["driver"]
        if p["driver"] in ("EGFR", "ALK")
        else ("adenocarcinoma" if p["histology"] == "adenocarcinoma" else "other")
    )
    start = days(rng.integers(7, 30))
    for rxnorm, drug in FIRST_LINE[regimen_key]:
        _medication(follow, ref, rxnorm, drug, start)
    horizon = p["death_days"] if p["died"] else 365
    for _ in range(2 + int(rng.integers(0, 3))):
        enc = _encounter(
            follow,
            ref,
            p,
            days(rng.integers(20, max(21, horizon))),
            rng,
            "185389009",
            "Follow-up visit",
        )
        drift = rng.normal(1.0, 0.08)
        for loinc, display, unit, column, decimals in LABS[:2]:
            _lab(
                follow,
                ref,
                enc,
                enc["period"]["start"],
                p,
                loinc,
                display,
                unit,
                float(p[column]) * drift,
                decimals,
            )
    if p["label"]:
        icd, snomed, display = METASTASES[int(rng.integers(0, len(METASTASES)))]
        _condition(follow, ref, icd, snomed, display, days(p["progression_days"]))
    if p["consent_opt_out"]:
        _consent(follow, ref, "deny", days(rng.integers(100, 380)))

    baseline_on = days(rng.integers(7, 35) + (rng.integers(60, 200) if rng.random() < 0.04 else 0))
    followup_on = days(395 + rng.integers(0, 30))
    return [
        Delivery("baseline", baseline_on, base.bundle(), base.counts()),
        Delivery("followup", followup_on, follow.bundle(), follow.counts()),
    ]
