"""Clinical notes for the patients with notes: consult, pathology and radiology notes around the
index date and, for most, a progress note after it, written from the latent cohort, with
annotation truth.

Each note is assembled from phrase banks (several wordings per fact, shuffled sections, varied
headers and list styles), so no fixed regex per template would parse them. Facts: diagnosis,
histology, stage, ECOG, smoking, symptoms (some negated), family history, prior treatments with
absolute and relative dates, hypothetical statements, biomarkers in words. Identifiers of every
applicable HIPAA Safe Harbor category are injected. The truth records every entity span (label,
concept, assertion) and every identifier span (category) in the text as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from .files import batch_folder, write_delivered

SYMPTOMS = {
    "cough": ("cough", "persistent cough", "dry cough"),
    "hemoptysis": ("hemoptysis", "blood-streaked sputum"),
    "dyspnea": ("dyspnea", "shortness of breath", "dyspnea on exertion"),
    "chest pain": ("chest pain", "pleuritic chest pain"),
    "weight loss": ("weight loss", "unintentional weight loss"),
    "fatigue": ("fatigue", "marked fatigue"),
    "fever": ("fever", "fevers"),
    "night sweats": ("night sweats",),
    "bone pain": ("bone pain",),
    "headache": ("headache", "headaches"),
}
HISTOLOGY_WORDS = {
    "adenocarcinoma": ("adenocarcinoma of the lung", "lung adenocarcinoma", "adenocarcinoma"),
    "squamous_cell": ("squamous cell carcinoma", "squamous cell carcinoma of the lung"),
    "nsclc_nos": ("non-small cell lung cancer", "NSCLC", "non-small cell carcinoma"),
}
FAMILY = ("mother", "father", "sister", "brother", "maternal aunt", "paternal uncle")
FAMILY_CONDITIONS = ("breast cancer", "colon cancer", "lung cancer", "prostate cancer")
BIOMARKER_WORDS = {
    "EGFR_exon19del": ("EGFR exon 19 deletion", "EGFR exon 19 del"),
    "EGFR_L858R": ("EGFR L858R mutation", "EGFR L858R"),
    "KRAS_G12C": ("KRAS G12C mutation", "KRAS G12C"),
    "KRAS_G12D": ("KRAS G12D mutation",),
    "KRAS_G12V": ("KRAS G12V mutation",),
    "ALK": ("ALK rearrangement", "ALK fusion"),
    "BRAF_V600E": ("BRAF V600E mutation",),
}
MONTHS = (
    "January February March April May June July August September October November December"
).split()
PROGRESS_SHARE = 0.6  # patients with a progress note after the index date
SMOKING_WORDS = {
    "never": ("never smoker", "lifelong nonsmoker", "has never smoked"),
    "former": ("former smoker", "quit smoking", "ex-smoker"),
    "current": ("current smoker", "smokes one pack per day", "active smoker"),
}


@dataclass
class Note:
    """A note under construction: text plus the spans it carries."""

    rng: np.random.Generator
    parts: list[str] = field(default_factory=list)
    length: int = 0
    entities: list[dict] = field(default_factory=list)
    identifiers: list[dict] = field(default_factory=list)

    def text(self, value: str) -> Note:
        self.parts.append(value)
        self.length += len(value)
        return self

    def entity(self, value: str, label: str, concept: str, **assertion) -> Note:
        self.entities.append(
            {
                "start": self.length,
                "end": self.length + len(value),
                "label": label,
                "concept": concept,
                "negated": assertion.get("negated", False),
                "historical": assertion.get("historical", False),
                "family": assertion.get("family", False),
                "hypothetical": assertion.get("hypothetical", False),
                "uncertain": assertion.get("uncertain", False),
            }
        )
        return self.text(value)

    def identifier(self, value: str, category: str) -> Note:
        self.identifiers.append(
            {"start": self.length, "end": self.length + len(value), "category": category}
        )
        return self.text(value)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def date(self, day: date) -> Note:
        style = int(self.rng.integers(4))
        text = (
            day.strftime("%m/%d/%Y"),
            f"{MONTHS[day.month - 1]} {day.day}, {day.year}",
            day.isoformat(),
            f"{day.day} {MONTHS[day.month - 1][:3]} {day.year}",
        )[style]
        return self.identifier(text, "DATE")

    def header(self, title: str) -> Note:
        style = int(self.rng.integers(3))
        text = (title.upper() + ":", title.title() + ":", f"{title.upper()}")[style]
        return self.text(f"\n{text}\n")


def _phone(rng) -> str:
    return f"({rng.integers(201, 990)}) {rng.integers(200, 999)}-{rng.integers(0, 10000):04d}"


def _identity_block(note: Note, p: dict, day: date, kind: str) -> None:
    name = f"{p['given_name'].split()[0]} {p['family_name']}"
    if note.rng.random() < 0.5:
        note.text("Patient: ").identifier(name, "NAME").text("    MRN: ")
    else:
        note.text("Name: ").identifier(f"{p['family_name']}, {p['given_name']}", "NAME")
        note.text("\nMedical record number: ")
    note.identifier(p["mrn"], "MRN").text("\nDOB: ").date(p["birth_date"])
    note.text("\nDate of service: ").date(day).text(f"\nNote type: {kind}\n")


def _contact_lines(note: Note, p: dict) -> None:
    rng = note.rng
    note.text("\nContact: ").identifier(p["phone"], "PHONE").text("; fax ")
    note.identifier(_phone(rng), "FAX").text(". Address: ")
    note.identifier(p["address_line"], "ADDRESS").text(", ").identifier(p["city"], "CITY")
    note.text(f", {p['state']} ").identifier(p["postal_code"], "ZIP").text(".\n")
    handle = f"{p['given_name'][0].lower()}.{p['family_name'].lower()}"
    note.text("Email on file: ").identifier(f"{handle}@example-mail.com", "EMAIL").text(". ")
    note.text("SSN ").identifier(
        f"{rng.integers(100, 900)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}", "SSN"
    )
    note.text(", account #").identifier(str(rng.integers(10**7, 10**8)), "ACCOUNT").text(".\n")


def _consult(note: Note, p: dict, day: date, facts: dict) -> None:
    rng = note.rng
    age = int(p["age_at_index"])
    note.header("History of present illness")
    if age >= 90:
        note.identifier(f"{age}-year-old", "AGE")
    else:
        note.text(f"{age}-year-old")
    note.text(f" {'woman' if p['sex'] == 'female' else 'man'} with newly diagnosed ")
    note.entity(note.pick(HISTOLOGY_WORDS[p["histology"]]), "DIAGNOSIS", p["histology"])
    note.text(", clinical ").entity(f"stage {p['stage_group']}", "STAGE", p["stage_group"])
    note.text(". ")
    for symptom in facts["symptoms"]:
        note.text(
            note.pick(
                (
                    "Reports ",
                    "She reports " if p["sex"] == "female" else "He reports ",
                    "Complains of ",
                )
            )
        )
        note.entity(note.pick(SYMPTOMS[symptom]), "SYMPTOM", symptom).text(". ")
    for symptom in facts["denied"]:
        note.text(note.pick(("Denies ", "No ", "Negative for ")))
        note.entity(note.pick(SYMPTOMS[symptom]), "SYMPTOM", symptom, negated=True).text(". ")
    sections = ["pmh", "family", "social", "plan"]
    rng.shuffle(sections)
    for section in sections:
        if section == "pmh":
            note.header("Past medical history")
            for treatment, when in facts["treatments"]:
                if rng.random() < 0.5:
                    note.text("Treated with ").entity(
                        treatment, "TREATMENT", treatment, historical=True
                    ).text(" starting ").date(when).text(". ")
                else:
                    weeks = max(1, (day - when).days // 7)
                    note.text("Started ").entity(
                        treatment, "TREATMENT", treatment, historical=True
                    ).text(f" {weeks} weeks ago. ")
            note.text("History of ").entity(
                "hypertension", "CONDITION", "hypertension", historical=True
            ).text(".")
        elif section == "family":
            note.header("Family history")
            relative, condition = facts["family"]
            pronoun = "Her" if p["sex"] == "female" else "His"
            note.text(note.pick((f"{pronoun} {relative}, ", f"The patient's {relative}, ")))
            note.identifier(f"{p['relative_name']}", "NAME").text(", had ")
            note.entity(condition, "CONDITION", condition, family=True).text(". ")
        elif section == "social":
            note.header("Social history")
            note.entity(
                note.pick(SMOKING_WORDS[p["smoking_status"]]),
                "SMOKING",
                p["smoking_status"],
            ).text(". ")
        else:
            note.header("Assessment and plan")
            note.entity(f"ECOG {p['ecog']}", "ECOG", str(p["ecog"])).text(". ")
            note.text(note.pick(("If ", "Should ")))
            note.entity("fever", "SYMPTOM", "fever", hypothetical=True)
            note.text(" develop, the patient will call ")
            note.identifier(_phone(rng), "PHONE").text(". ")
            note.text("Portal: ").identifier(
                f"https://portal.example-health.org/p/{rng.integers(10**5, 10**6)}", "URL"
            ).text("\n")


def _pathology(note: Note, p: dict, facts: dict) -> None:
    note.header(note.pick(("Final diagnosis", "Diagnosis")))
    note.text("Lung, biopsy: ").entity(
        note.pick(HISTOLOGY_WORDS[p["histology"]]), "DIAGNOSIS", p["histology"]
    ).text(".\n")
    note.header("Molecular studies")
    biomarker = facts["biomarker"]
    if biomarker:
        note.entity(note.pick(BIOMARKER_WORDS[biomarker]), "BIOMARKER", biomarker)
        note.text(note.pick((" detected.", " identified.", " is present.")))
    else:
        note.text("No ").entity(
            note.pick(("EGFR mutation", "EGFR exon 19 deletion")), "BIOMARKER", "EGFR", negated=True
        ).text(" detected.")
    note.text(" Specimen received from ").identifier(
        "10." + ".".join(str(note.rng.integers(0, 255)) for _ in range(3)), "IP"
    ).text(".\n")


def _radiology(note: Note, p: dict) -> None:
    note.header(note.pick(("Findings", "CT chest findings")))
    note.text(f"Spiculated mass measuring {p['lesion_diameter_mm']:.0f} mm. ")
    if p["stage_group"] == "IV":
        note.text("Multiple lesions consistent with ").entity(
            "metastatic disease", "DIAGNOSIS", "metastasis"
        ).text(". ")
    else:
        note.text("No evidence of ").entity(
            "metastatic disease", "DIAGNOSIS", "metastasis", negated=True
        ).text(". ")
    if p["stage_group"] in ("III", "IV"):  # staging brain MRI; no draw, so no other text moves
        if p["brain_metastases"]:
            note.text("Brain MRI: ").entity("brain metastases", "DIAGNOSIS", "brain_metastasis")
        else:
            note.text("Brain MRI: no ").entity(
                "brain metastases", "DIAGNOSIS", "brain_metastasis", negated=True
            )
        note.text(". ")
    note.text(note.pick(("Cannot exclude ", "Possible ", "Findings may represent ")))
    note.entity("pneumonia", "CONDITION", "pneumonia", uncertain=True).text(". ")
    note.text("Scanner device serial ").identifier(
        f"SN-{note.rng.integers(10**6, 10**7)}", "DEVICE"
    ).text(".\n")


def _progress(note: Note, p: dict, facts: dict) -> None:
    """A visit after the index date: what the point-in-time features must not see."""
    later_ecog = min(int(p["ecog"]) + 1, 4) if p["label"] else int(p["ecog"])
    note.header(note.pick(("Interval history", "Subjective")))
    new = next((s for s in SYMPTOMS if s not in facts["symptoms"]), "fatigue")
    note.text(note.pick(("Now reports ", "New complaint of "))).entity(
        note.pick(SYMPTOMS[new]), "SYMPTOM", new
    ).text(". ")
    note.header(note.pick(("Assessment", "Impression")))
    note.entity(f"ECOG {later_ecog}", "ECOG", str(later_ecog)).text(". Return in 4 weeks.\n")


def _facts(p: dict, rng: np.random.Generator) -> dict:
    names = list(SYMPTOMS)
    rng.shuffle(names)
    n = min(int(p["symptom_burden"]), 4)
    biomarker = None
    if pd.notna(p["egfr_variant"]):
        biomarker = {"L858R": "EGFR_L858R", "exon19del": "EGFR_exon19del"}[p["egfr_variant"]]
    elif pd.notna(p["kras_variant"]):
        biomarker = f"KRAS_{p['kras_variant']}"
    elif p["driver"] == "ALK":
        biomarker = "ALK"
    elif p["driver"] == "BRAF":
        biomarker = "BRAF_V600E"
    index_date = p["index_date"]
    treatments = [
        (str(treatment), index_date - timedelta(days=int(before)))
        for treatment, before in zip(
            p["prior_treatments"], p["prior_treatment_days_before"], strict=True
        )
    ]
    return {
        "symptoms": names[:n],
        "denied": names[n : n + 2],
        "biomarker": biomarker,
        "treatments": treatments,
        "family": (str(rng.choice(np.array(FAMILY))), str(rng.choice(np.array(FAMILY_CONDITIONS)))),
    }


def render_notes(cohort: pd.DataFrame, seed: int, landing: Path) -> tuple[list[dict], list, list]:
    """Write every noted patient's notes under landing/; returns (deliveries, entity truth,
    identifier truth)."""
    deliveries, entities, identifiers = [], [], []
    for i, p in enumerate(cohort.to_dict("records")):
        if not p["has_notes"]:
            continue
        rng = np.random.default_rng([seed, 60, i])
        facts = _facts(p, rng)
        index_date = p["index_date"]
        plan = [
            ("consult", index_date - timedelta(days=int(rng.integers(0, 8)))),
            ("pathology", index_date - timedelta(days=int(rng.integers(3, 20)))),
            ("radiology", index_date - timedelta(days=int(rng.integers(1, 30)))),
        ]
        if rng.random() < PROGRESS_SHARE:
            plan.append(("progress", index_date + timedelta(days=int(rng.integers(30, 150)))))
        for k, (kind, day) in enumerate(plan):
            note = Note(rng)
            _identity_block(note, p, day, kind)
            if kind == "consult":
                _consult(note, p, day, facts)
            elif kind == "pathology":
                _pathology(note, p, facts)
            elif kind == "progress":
                _progress(note, p, facts)
            else:
                _radiology(note, p)
            _contact_lines(note, p)
            text = "".join(note.parts)
            crlf = rng.random() < 0.2
            encoding = "latin-1" if rng.random() < 0.1 else "utf-8"
            data = (text.replace("\n", "\r\n") if crlf else text).encode(encoding)
            delivered = day + timedelta(days=int(rng.integers(0, 4)))
            path = landing / batch_folder(delivered) / f"note-{p['patient_id'][:8]}-{k}.txt"
            write_delivered(path, data, delivered)
            note_file = path.relative_to(landing.parent).as_posix()
            deliveries.append({"path": note_file, "kind": kind, "mrn": p["mrn"], "note_date": day})
            entities += [{"path": note_file, "mrn": p["mrn"], **e} for e in note.entities]
            identifiers += [{"path": note_file, **e} for e in note.identifiers]
    return deliveries, entities, identifiers
