"""Safe Harbor de-identification of note text: every identifier replaced by its category, dates
moved by the patient's keyed shift (the gateway's shift, so de-identified timelines line up
across modalities). Recall first, as de-identification is judged.

Rule-based (patterns for the structured identifiers, labelled fields and name contexts) plus the
patient's own identifiers from the EHR (names, MRN, phone, address, city, ZIP), which catch
mentions no pattern can. Written here because Presidio and Philter need models or services this
machine cannot install; the evaluation asset measures recall and precision per category.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .dates import date_mentions

# \b after the suffix: "Ave" must not stop the match inside "Avenue".
_STREET = r"(?:St|Street|Ave|Avenue|Rd|Road|Ln|Lane|Dr|Drive|Ct|Court|Way|Blvd|Boulevard|Pl|Place|Ter|Terrace)\b\.?"
_STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM "
    "NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC"
).split()
_NAME_WORD = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
PATTERNS: tuple[tuple[str, re.Pattern, int], ...] = (
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), 0),
    ("URL", re.compile(r"\b(?:https?://|www\.)\S+[^\s.,;)]"), 0),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), 0),
    ("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), 0),
    (
        "FAX",
        re.compile(r"(?i)\bfax(?:\s*(?:no\.?|number|#))?[:\s]*(\(?\d{3}\)?[-. ]?\d{3}[-. ]\d{4})"),
        1,
    ),
    ("PHONE", re.compile(r"(?:\(\d{3}\)\s?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b"), 0),
    (
        "MRN",
        re.compile(
            r"(?i)\b(?:MRN|medical record (?:number|no\.?)|record #|clinic number|patient id)"
            r"[:#\s]*([A-Z]*\d[\d-]{4,}\d)"
        ),
        1,
    ),
    ("MRN", re.compile(r"\bMRN\d{5,}\b"), 0),
    (
        "ACCOUNT",
        re.compile(r"(?i)\b(?:account|acct)\.?\s*(?:#|no\.?|number)?\s*:?\s*#?(\d{5,})"),
        1,
    ),
    (
        "DEVICE",
        re.compile(r"(?i)\b(?:serial(?: number| no\.?)?|s/n)[:#\s]*([A-Z]{0,4}-?\d[\w-]{4,})"),
        1,
    ),
    (
        "AGE",
        re.compile(
            r"(?i)\b(?:9\d|1[01]\d)[- ](?:year|yr)s?[- ]old\b|(?<=\baged )(?:9\d|1[01]\d)\b"
        ),
        0,
    ),
    ("ADDRESS", re.compile(rf"\b\d{{1,5}} (?:{_NAME_WORD} ){{1,3}}{_STREET}"), 0),
    (
        "CITY",
        re.compile(rf"\b({_NAME_WORD}(?: {_NAME_WORD})?),? (?:{'|'.join(_STATES)})\b(?= \d{{5}})"),
        1,
    ),
    ("ZIP", re.compile(rf"(?<=\b(?:{'|'.join(_STATES)}) )\d{{5}}(?:-\d{{4}})?\b"), 0),
    ("NAME", re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Dr)\.? ({_NAME_WORD}(?: {_NAME_WORD})?)"), 1),
    (
        "NAME",
        re.compile(
            # A labelled field: up to four capitalized words ("Neid, Indira", "Sleips I., Nephra").
            r"(?m)^[ \t]*(?i:patient name|patient|name|provider|physician|referring physician|"
            r"pcp|attending|signature|signed)[ \t]*:[ \t]*([A-Z][\w'.-]*(?:,? [A-Z][\w'.-]*){1,3})"
        ),
        1,
    ),
    # A name before a credential, initials included: "W. R. Davis MD", "Ada Lee, M.D." ("MD"
    # before a ZIP code is Maryland).
    (
        "NAME",
        re.compile(
            rf"((?:\b[A-Z]\. ?){{0,3}}(?:\b{_NAME_WORD} ){{0,2}}\b{_NAME_WORD}),? "
            r"(?:MD|M\.D\.|DO|RN|NP|PA-C|PhD)\b(?! \d{5})"
        ),
        1,
    ),
    (
        "NAME",
        re.compile(
            rf"(?i:\b(?:mother|father|sister|brother|aunt|uncle|daughter|son|wife|husband|spouse|cousin|grandmother|grandfather)),? ({_NAME_WORD} {_NAME_WORD})"
        ),
        1,
    ),
    (
        "NAME",
        re.compile(
            rf"(?i:signed by|dictated by|seen by|attending:?)\s+({_NAME_WORD}(?: [A-Z]\.)?(?: {_NAME_WORD})?)"
        ),
        1,
    ),
)


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    category: str


def merged_identity(ehr: dict | None, document: str | dict | None) -> dict | None:
    """The EHR identity of a note's patient plus what the note's own document says (a CDA
    header: its patient and every other person, address and telecom), all to be removed."""
    import json

    if isinstance(document, str):
        document = json.loads(document)
    if not document:
        return ehr
    merged = dict(ehr or {})
    others = list(document.get("others") or [])
    for field_name, category in (
        ("family_name", "NAME"),
        ("given_name", "NAME"),
        ("phone", "PHONE"),
        ("address_line", "ADDRESS"),
        ("city", "CITY"),
        ("postal_code", "ZIP"),
    ):
        for word in (
            (document.get(field_name) or "").split()
            if category == "NAME"
            else [document.get(field_name)]
        ):
            if word:
                others.append([category, word])
    merged["others"] = [*(merged.get("others") or []), *others]
    return merged


def _known(text: str, identity: dict) -> list[Found]:
    """Mentions of the patient's own identifiers from the EHR and from the note's own document
    header (whole words, any case)."""
    found = []
    values = {
        "NAME": [identity.get("family_name"), *(identity.get("given_name") or "").split()],
        "MRN": [identity.get("mrn")],
        "PHONE": [identity.get("phone")],
        "ADDRESS": [identity.get("address_line")],
        "CITY": [identity.get("city")],
        "ZIP": [identity.get("postal_code")],
    }
    for category, value in identity.get("others") or ():
        values.setdefault(category, []).append(value)
    for category, candidates in values.items():
        for value in candidates:
            value = (value or "").strip(" .")
            if len(value) < 3:
                continue
            for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.I):
                found.append(Found(m.start(), m.end(), category))
    return found


_STATE = "|".join(_STATES)
# The lines after a street address, one field per line as address blocks and documents write
# them: "Springfield", "Springfield, IL", "IL", "62704", "Springfield IL 62704".
_ADDRESS_LINE = re.compile(
    rf"^[ \t]*(?P<city>{_NAME_WORD}(?: {_NAME_WORD}){{0,2}})?(?:,?[ \t]*(?:{_STATE})\b)?"
    rf"(?:[ \t]*(?P<zip>\d{{5}}(?:-\d{{4}})?))?[ \t]*$"
)


def _address_blocks(text: str, streets: list[Found]) -> list[Found]:
    """City and ZIP lines that follow a street address line (up to three lines after it)."""
    found = []
    for street in streets:
        line_end = text.find("\n", street.end)
        for _ in range(3):
            if line_end < 0:
                break
            start, line_end = line_end + 1, text.find("\n", line_end + 1)
            line = text[start : line_end if line_end >= 0 else len(text)]
            match = _ADDRESS_LINE.match(line) if line.strip() else None
            if not match:
                break
            for group, category in (("city", "CITY"), ("zip", "ZIP")):
                if match.group(group):
                    found.append(
                        Found(start + match.start(group), start + match.end(group), category)
                    )
    return found


def find_identifiers(text: str, identity: dict | None = None) -> list[Found]:
    """Identifier spans, overlaps merged (the earlier-starting, longer span's category wins)."""
    spans = [
        Found(m.start(group), m.end(group), category)
        for category, pattern, group in PATTERNS
        for m in pattern.finditer(text)
        if m.group(group)
    ]
    spans += [
        Found(s, e, "DATE") for s, e, _, kind in date_mentions(text, None) if kind == "absolute"
    ]
    spans += _known(text, identity or {})
    spans += _address_blocks(text, [f for f in spans if f.category == "ADDRESS"])
    merged: list[Found] = []
    for span in sorted(spans, key=lambda f: (f.start, -(f.end - f.start))):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Found(last.start, max(last.end, span.end), last.category)
        else:
            merged.append(span)
    return merged


def deidentify(text: str, identity: dict | None, shift_days: int | None) -> tuple[str, list[Found]]:
    """(de-identified text, spans replaced). Dates become '[DATE yyyy-mm-dd]' moved by the
    patient's shift ('[DATE]' without one); everything else '[CATEGORY]'."""
    spans = find_identifiers(text, identity)
    dates = {(s, e): d for s, e, d, kind in date_mentions(text, None) if kind == "absolute"}
    out, cursor = [], 0
    for span in spans:
        out.append(text[cursor : span.start])
        day = dates.get((span.start, span.end))
        if span.category == "DATE" and day is not None and shift_days is not None:
            out.append(f"[DATE {(day + timedelta(days=shift_days)).isoformat()}]")
        else:
            out.append(f"[{span.category}]")
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out), spans


def deidentified_note(note: dict, identities: dict[str, dict], key: bytes) -> dict:
    """The silver.notes_deidentified row of one bronze note: its text with every identifier
    (the EHR's and the document header's identity, and what the detector finds) replaced and
    dates shifted by the patient's offset."""
    from ..governance.pseudonym import date_shift_days

    ehr = identities.get(note["mrn"])
    patient = ehr["research_key"] if ehr else None
    identity = merged_identity(ehr, note["document_identity"])
    shift = date_shift_days(patient, key) if patient else None
    text, spans = deidentify(note["text"] or "", identity, shift)
    return {
        "research_key": patient,
        "note_id": note["note_id"],
        "note_type": note["note_type"],
        "note_date": note["note_date"],
        "deidentified_text": text,
        "identifiers_replaced": len(spans),
        "_source_sha256": note["_source_sha256"],
        "_source_locator": note["note_id"],
    }
