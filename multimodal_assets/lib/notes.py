"""Notes modality: note files into bronze raw text (restricted), silver entities with assertions
and de-identified text, gold patient timelines and per-patient note features as of the index
date.

Bronze reads plain text in any common encoding and line ending (normalized to LF, so character
offsets are stable), HL7 CDA documents (the body's sections as text, the header as the
document's identity: `notes_cda`), and backtick-delimited exports (one note per row). A labelled header block (MRN, date of service, note type) links a note to its patient.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from datetime import date

from .ingest import QuarantineError
from .notes_nlp import date_mentions
from .tables import RESEARCH_KEY, RUN_ID, Column, Table, provenance_columns

NOTE_FORMATS = ("text", "cda", "export")
_MRN = re.compile(
    r"(?im)^[^\n]{0,40}?\b(?:MRN|medical record (?:number|no\.?))\s*[:#]?\s*([A-Z]*\d{5,})"
)
_DATE_LINE = re.compile(r"(?im)^\s*(?:date of service|service date|date)\s*:\s*([^\n]+)$")
_TYPE_LINE = re.compile(r"(?im)^\s*note type\s*:\s*([A-Za-z _-]{2,40})$")

NOTE_TEXTS = Table(
    layer="bronze",
    name="note_texts",
    modality="notes",
    primary_key=("note_id",),
    restricted=True,
    append_once=True,
    description="Raw note text as delivered (line endings normalized), with what its header "
    "says: identified, restricted.",
    columns=(
        Column(
            "note_id",
            "VARCHAR",
            "File hash prefix and note number in the file.",
            "none",
            nullable=False,
        ),
        Column("mrn", "VARCHAR", "MRN from the note header (NULL when none).", "phi", "hipaa"),
        Column("note_date", "DATE", "Date of service from the header.", "phi", "hipaa"),
        Column("note_type", "VARCHAR", "Note type from the header (consult, pathology…).", "none"),
        Column("text", "VARCHAR", "The note text, LF line endings.", "phi", "hipaa"),
        Column(
            "document_identity",
            "JSON",
            "Who a structured document (CDA) says it is about and by: the patient's name, "
            "birth date, address, phone, ids, and every other person, address and telecom in "
            "its header; the de-identifier removes them (NULL for plain text).",
            "phi",
            "hipaa",
        ),
        Column("source_format", "VARCHAR", "text, cda or export.", "none", allowed=NOTE_FORMATS),
        Column("encoding", "VARCHAR", "Character encoding the bytes were read with.", "none"),
        Column("line_endings", "VARCHAR", "LF, CRLF, CR or none, as delivered.", "none"),
        Column("characters", "INTEGER", "Length of the text.", "none", min_value=0),
        Column("received_at", "TIMESTAMP", "Arrival of the file (UTC).", "none"),
        *provenance_columns("Note number within the file."),
    ),
)


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): BOM-marked UTF-8/16 first, then UTF-8, then Windows-1252, Latin-1."""
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(name), name
    for name in ("utf-8", "cp1252"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _line_endings(text: str) -> tuple[str, str]:
    kind = (
        "CRLF" if "\r\n" in text else ("CR" if "\r" in text else ("LF" if "\n" in text else "none"))
    )
    return text.replace("\r\n", "\n").replace("\r", "\n"), kind


def _header(text: str) -> dict:
    head = "\n".join(text.split("\n")[:12])
    mrn = _MRN.search(head)
    when = _DATE_LINE.search(head)
    dates = date_mentions(when.group(1), None) if when else []
    kind = _TYPE_LINE.search(head)
    return {
        "mrn": mrn.group(1) if mrn else None,
        "note_date": dates[0][2] if dates else None,
        "note_type": kind.group(1).strip().lower() if kind else None,
    }


def _export_rows(text: str) -> list[tuple[str, date | None]]:
    """(text, date) per row of a backtick-delimited export with a header line."""
    lines = [line for line in text.split("\n") if line.strip()]
    columns = [c.strip().lower() for c in lines[0].split("`")]
    text_column = next(
        (i for i, c in enumerate(columns) if c in ("comments", "text", "note", "report")),
        len(columns) - 1,
    )
    date_column = next((i for i, c in enumerate(columns) if "date" in c), None)
    rows = []
    for line in lines[1:]:
        fields = line.split("`")
        if len(fields) <= text_column:
            continue
        when = date_mentions(fields[date_column], None) if date_column is not None else []
        rows.append((fields[text_column].strip(), when[0][2] if when else None))
    return rows


def parse_note_file(data: bytes) -> list[dict]:
    """Bronze rows (one per note) of a note file, or QuarantineError."""
    if not data.strip():
        raise QuarantineError("empty_file", "the file is empty")
    # Anywhere in the file, not only its head: binary appended to a note must not pass as text.
    if b"\x00" in data and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise QuarantineError("not_text", "binary content (NUL bytes): not a text note")
    raw, encoding = decode(data)
    text, endings = _line_endings(raw)
    if text.lstrip().startswith("{\\rtf"):
        raise QuarantineError(
            "rtf_not_supported", "RTF markup: convert to plain text before delivery"
        )
    control = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\n\t\f")
    if control > 0.01 * min(len(text), 4096):
        raise QuarantineError("not_text", "control characters throughout: not a text note")
    stripped = text.lstrip()
    if (
        stripped.startswith("<?xml")
        or stripped.startswith("<levelone")
        or "<ClinicalDocument" in stripped[:500]
    ):
        from .notes_cda import parse_cda

        document = parse_cda(text)
        if not document.text:
            raise QuarantineError("no_notes", "the CDA document has no body text")
        notes = [(document.text, document.note_date, "cda")]
    elif text.split("\n", 1)[0].count("`") >= 3:
        notes = [(body, when, "export") for body, when in _export_rows(text)]
    else:
        notes = [(text, None, "text")]
    digest = hashlib.sha256(data).hexdigest()[:16]
    rows = []
    for i, (body, when, source_format) in enumerate(notes):
        header = (
            _header(body)
            if source_format == "text"
            else {"mrn": None, "note_date": when, "note_type": source_format}
        )
        if source_format == "cda":
            header["mrn"] = document.mrn
            header["document_identity"] = json.dumps(document.identity)
        rows.append(
            {
                "note_id": f"{digest}-{i}",
                **header,
                "text": body,
                "source_format": source_format,
                "encoding": encoding,
                "line_endings": endings,
                "characters": len(body),
                "_source_locator": f"note {i}",
            }
        )
    if not rows:
        raise QuarantineError("no_notes", "an export without data rows")
    return rows


# ---- silver ------------------------------------------------------------------------------------

ASSERTIONS = ("negated", "historical", "family", "hypothetical", "uncertain")
ENTITY_LABELS = (
    "DIAGNOSIS",
    "STAGE",
    "SYMPTOM",
    "TREATMENT",
    "CONDITION",
    "SMOKING",
    "ECOG",
    "BIOMARKER",
)
_NOTE_KEY = Column(
    "research_key",
    "VARCHAR",
    "Keyed pseudonym of the note's MRN (NULL when the note names no known patient).",
    "quasi_identifier",
    "hipaa",
)
_NOTE_ID = Column(
    "note_id", "VARCHAR", "Note identifier (file hash prefix, number).", "none", nullable=False
)

NOTE_ENTITIES = Table(
    layer="silver",
    name="note_entities",
    modality="notes",
    primary_key=("note_id", "start_char", "label"),
    description="Clinical entities found in notes, with assertion (negated, historical, family, "
    "hypothetical, uncertain), section and the date the text anchors them to.",
    columns=(
        _NOTE_KEY,
        _NOTE_ID,
        Column(
            "start_char",
            "INTEGER",
            "Span start in the note text.",
            "none",
            nullable=False,
            min_value=0,
        ),
        Column("end_char", "INTEGER", "Span end (exclusive).", "none", nullable=False, min_value=0),
        Column("label", "VARCHAR", "Entity type.", "none", nullable=False, allowed=ENTITY_LABELS),
        Column("concept", "VARCHAR", "Normalized concept.", "sensitive", nullable=False),
        Column("code", "VARCHAR", "ICD-10-CM code where the concept maps exactly.", "sensitive"),
        *[
            Column(a, "BOOLEAN", f"The mention is {a}.", "sensitive", nullable=False)
            for a in ASSERTIONS
        ],
        Column("section", "VARCHAR", "Section title the mention is under.", "none"),
        Column("entity_date", "DATE", "Date the sentence anchors the mention to.", "phi", "hipaa"),
        Column(
            "date_source",
            "VARCHAR",
            "absolute (a date in the text) or relative ('3 weeks ago', from the note date).",
            "none",
            allowed=("absolute", "relative"),
        ),
        Column("note_date", "DATE", "Date of service of the note.", "phi", "hipaa"),
        *provenance_columns("note_id:start-end of the span."),
    ),
    lineage={
        "research_key": (("bronze.note_texts", "mrn"), ("silver.patients", "research_key")),
        "note_id": (("bronze.note_texts", "note_id"),),
        **{
            c: (("bronze.note_texts", "text"),)
            for c in (
                "start_char",
                "end_char",
                "label",
                "concept",
                "code",
                *ASSERTIONS,
                "section",
                "entity_date",
                "date_source",
            )
        },
        "note_date": (("bronze.note_texts", "note_date"),),
    },
)

NOTES_DEIDENTIFIED = Table(
    layer="silver",
    name="notes_deidentified",
    modality="notes",
    primary_key=("note_id",),
    description="Note text with every Safe Harbor identifier replaced by its category and dates "
    "moved by the patient's keyed shift.",
    columns=(
        _NOTE_KEY,
        _NOTE_ID,
        Column("note_type", "VARCHAR", "Note type.", "none"),
        Column("note_date", "DATE", "Date of service.", "phi", "hipaa"),
        Column(
            "deidentified_text", "VARCHAR", "Text with identifiers replaced.", "quasi_identifier"
        ),
        Column(
            "identifiers_replaced", "INTEGER", "Identifier spans replaced.", "none", min_value=0
        ),
        *provenance_columns("note_id of the note."),
    ),
    lineage={
        "research_key": (("bronze.note_texts", "mrn"), ("silver.patients", "research_key")),
        "note_id": (("bronze.note_texts", "note_id"),),
        "note_type": (("bronze.note_texts", "note_type"),),
        "note_date": (("bronze.note_texts", "note_date"),),
        "deidentified_text": (("bronze.note_texts", "text"), ("silver.patients", "family_name")),
        "identifiers_replaced": (("bronze.note_texts", "text"),),
    },
)

# ---- gold --------------------------------------------------------------------------------------

PATIENT_TIMELINE = Table(
    layer="gold",
    name="patient_timeline",
    modality="notes",
    primary_key=("note_id", "start_char", "label"),
    description="Dated clinical events from notes (affirmed, the patient's own, not hypothetical "
    "or uncertain), each with the note span that supports it.",
    columns=(
        RESEARCH_KEY,
        Column(
            "event_date",
            "DATE",
            "When the event happened, as the note dates it.",
            "phi",
            "hipaa",
            nullable=False,
        ),
        Column(
            "date_source",
            "VARCHAR",
            "absolute, relative or note_date (no date in the sentence).",
            "none",
            nullable=False,
            allowed=("absolute", "relative", "note_date"),
        ),
        Column("label", "VARCHAR", "Event type.", "none", nullable=False, allowed=ENTITY_LABELS),
        Column("concept", "VARCHAR", "Normalized concept.", "sensitive", nullable=False),
        Column("code", "VARCHAR", "ICD-10-CM code where one maps.", "sensitive"),
        Column("historical", "BOOLEAN", "Told as history.", "sensitive", nullable=False),
        _NOTE_ID,
        Column("start_char", "INTEGER", "Supporting span start.", "none", nullable=False),
        Column("end_char", "INTEGER", "Supporting span end.", "none", nullable=False),
        Column("section", "VARCHAR", "Section of the span.", "none"),
        RUN_ID,
    ),
    lineage={
        "research_key": (("silver.note_entities", "research_key"),),
        "event_date": (
            ("silver.note_entities", "entity_date"),
            ("silver.note_entities", "note_date"),
        ),
        "date_source": (("silver.note_entities", "date_source"),),
        **{
            c: (("silver.note_entities", c),)
            for c in (
                "label",
                "concept",
                "code",
                "historical",
                "note_id",
                "start_char",
                "end_char",
                "section",
            )
        },
    },
)

TIMELINE_SQL = """
SELECT research_key, coalesce(entity_date, note_date) AS event_date,
       coalesce(date_source, 'note_date') AS date_source, label, concept, code, historical,
       note_id, start_char, end_char, section, $run_id AS _run_id
FROM silver.note_entities
WHERE research_key IS NOT NULL AND coalesce(entity_date, note_date) IS NOT NULL
  AND NOT (negated OR family OR hypothetical OR uncertain)
"""

_AS_OF = "n.research_key = c.research_key AND n.note_date <= c.index_date"
FEATURES = Table(
    layer="gold",
    name="notes_features",
    modality="notes",
    primary_key=("research_key",),
    description="One row per patient from notes dated by the index date: ECOG, smoking, symptom "
    "burden, prior treatments, biomarker mentions; NULL (unknown) without notes.",
    columns=(
        RESEARCH_KEY,
        Column("has_notes", "BOOLEAN", "A note dated by the index date.", "none", nullable=False),
        Column("notes_count", "INTEGER", "Notes by the index date.", "none", min_value=0),
        Column(
            "notes_ecog",
            "INTEGER",
            "Latest ECOG stated in a note.",
            "sensitive",
            min_value=0,
            max_value=4,
        ),
        Column(
            "notes_current_smoker", "BOOLEAN", "Latest smoking mention says current.", "sensitive"
        ),
        Column("notes_never_smoker", "BOOLEAN", "Latest smoking mention says never.", "sensitive"),
        Column(
            "notes_symptom_count",
            "INTEGER",
            "Distinct symptoms affirmed (not historical).",
            "sensitive",
            min_value=0,
        ),
        Column(
            "notes_negated_symptom_count",
            "INTEGER",
            "Distinct symptoms explicitly denied.",
            "sensitive",
            min_value=0,
        ),
        Column(
            "notes_prior_treatments",
            "INTEGER",
            "Distinct treatments told as history.",
            "sensitive",
            min_value=0,
        ),
        Column("notes_metastatic", "BOOLEAN", "Metastatic disease affirmed.", "sensitive"),
        Column("notes_egfr_positive", "BOOLEAN", "An EGFR alteration affirmed.", "sensitive"),
        Column("notes_kras_positive", "BOOLEAN", "A KRAS alteration affirmed.", "sensitive"),
        Column("notes_alk_positive", "BOOLEAN", "An ALK rearrangement affirmed.", "sensitive"),
        Column(
            "notes_data_through",
            "DATE",
            "Latest note date used (point-in-time guard).",
            "phi",
            "hipaa",
        ),
        RUN_ID,
    ),
    lineage={
        "research_key": (("gold.clinical_features", "research_key"),),
        "has_notes": (
            ("silver.note_entities", "note_date"),
            ("gold.clinical_features", "index_date"),
        ),
        "notes_count": (("silver.note_entities", "note_id"),),
        **{
            c: (("silver.note_entities", "concept"), ("silver.note_entities", "negated"))
            for c in (
                "notes_ecog",
                "notes_current_smoker",
                "notes_never_smoker",
                "notes_symptom_count",
                "notes_negated_symptom_count",
                "notes_prior_treatments",
                "notes_metastatic",
                "notes_egfr_positive",
                "notes_kras_positive",
                "notes_alk_positive",
            )
        },
        "notes_data_through": (("silver.note_entities", "note_date"),),
    },
)

_OWN = "NOT (n.family OR n.hypothetical OR n.uncertain)"
FEATURES_SQL = f"""
WITH notes AS (
    SELECT n.* FROM silver.note_entities n JOIN gold.clinical_features c ON {_AS_OF}
),
latest AS (
    SELECT research_key, label, arg_max(concept, note_date) AS concept
    FROM notes n WHERE label IN ('ECOG', 'SMOKING') AND {_OWN} AND NOT n.negated
    GROUP BY 1, 2
),
per_patient AS (
    SELECT research_key, count(DISTINCT note_id) AS notes_count, max(note_date) AS data_through,
        count(DISTINCT concept) FILTER (WHERE label = 'SYMPTOM' AND {_OWN} AND NOT negated
                                        AND NOT historical) AS symptoms,
        count(DISTINCT concept) FILTER (WHERE label = 'SYMPTOM' AND {_OWN} AND negated)
            AS denied,
        count(DISTINCT concept) FILTER (WHERE label = 'TREATMENT' AND {_OWN} AND NOT negated
                                        AND historical) AS treatments,
        bool_or(concept = 'metastasis' AND {_OWN} AND NOT negated) AS metastatic,
        bool_or(concept LIKE 'EGFR%' AND {_OWN} AND NOT negated) AS egfr,
        bool_or(concept LIKE 'KRAS%' AND {_OWN} AND NOT negated) AS kras,
        bool_or(concept = 'ALK' AND {_OWN} AND NOT negated) AS alk
    FROM notes n GROUP BY 1
)
SELECT c.research_key, p.research_key IS NOT NULL AS has_notes,
       coalesce(p.notes_count, 0)::INTEGER AS notes_count,
       TRY_CAST(e.concept AS INTEGER) AS notes_ecog,
       s.concept = 'current' AS notes_current_smoker, s.concept = 'never' AS notes_never_smoker,
       p.symptoms::INTEGER AS notes_symptom_count,
       p.denied::INTEGER AS notes_negated_symptom_count,
       p.treatments::INTEGER AS notes_prior_treatments,
       p.metastatic AS notes_metastatic, p.egfr AS notes_egfr_positive,
       p.kras AS notes_kras_positive, p.alk AS notes_alk_positive,
       p.data_through AS notes_data_through, $run_id AS _run_id
FROM gold.clinical_features c
LEFT JOIN per_patient p USING (research_key)
LEFT JOIN latest e ON e.research_key = c.research_key AND e.label = 'ECOG'
LEFT JOIN latest s ON s.research_key = c.research_key AND s.label = 'SMOKING'
"""

TABLES = (NOTE_TEXTS, NOTE_ENTITIES, NOTES_DEIDENTIFIED, PATIENT_TIMELINE, FEATURES)


def entity_rows_of(note: dict, key_by_mrn: dict[str, str]) -> list[dict]:
    """Silver entity rows of one bronze note, linked to its patient through the MRN."""
    return entity_rows(note, key_by_mrn.get(note["mrn"]))


def entity_rows(note: dict, research_key: str | None) -> list[dict]:
    """Silver entity rows of one bronze note."""
    from .notes_nlp import analyze

    rows = []
    for m in analyze(note["text"] or "", note["note_date"]):
        rows.append(
            {
                "research_key": research_key,
                "note_id": note["note_id"],
                "start_char": m.start,
                "end_char": m.end,
                "label": m.label,
                "concept": m.concept,
                "code": m.code,
                **{a: getattr(m, a) for a in ASSERTIONS},
                "section": m.section,
                "entity_date": m.event_date,
                "date_source": m.date_source,
                "note_date": note["note_date"],
                "_source_sha256": note["_source_sha256"],
                "_source_locator": f"{note['note_id']}:{m.start}-{m.end}",
            }
        )
    return rows
