"""Notes silver: entities with their assertions (negated, historical, family, hypothetical, uncertain), and de-identified text."""

from __future__ import annotations

from ..platform.tables import Column, Table, provenance_columns

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


def entity_rows_of(note: dict, key_by_mrn: dict[str, str]) -> list[dict]:
    """Silver entity rows of one bronze note, linked to its patient through the MRN."""
    return entity_rows(note, key_by_mrn.get(note["mrn"]))


def entity_rows(note: dict, research_key: str | None) -> list[dict]:
    """Silver entity rows of one bronze note."""
    from .nlp import analyze

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
