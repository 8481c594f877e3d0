"""Notes modality: note files into bronze raw text (restricted), silver entities with assertions
and de-identified text, gold patient timelines and per-patient note features as of the index
date.

Bronze reads plain text in any common encoding and line ending (normalized to LF, so character
offsets are stable), HL7 CDA documents (the body's sections as text, the header as the
document's identity: `cda.py`), and backtick-delimited exports (one note per row). A labelled
header block (MRN, date of service, note type) links a note to its patient.

Modules: `bronze` (note files into bronze text), `silver` (entities with assertions, de-identified
text), `gold` (timelines and per-patient features and their SQL).
"""

from .bronze import NOTE_FORMATS, NOTE_TEXTS, decode, parse_note_file
from .gold import FEATURES, PATIENT_TIMELINE
from .silver import (
    ASSERTIONS,
    ENTITY_LABELS,
    NOTE_ENTITIES,
    NOTES_DEIDENTIFIED,
    entity_rows,
    entity_rows_of,
)

TABLES = (NOTE_TEXTS, NOTE_ENTITIES, NOTES_DEIDENTIFIED, PATIENT_TIMELINE, FEATURES)

__all__ = [
    "ASSERTIONS",
    "ENTITY_LABELS",
    "FEATURES",
    "NOTES_DEIDENTIFIED",
    "NOTE_ENTITIES",
    "NOTE_FORMATS",
    "NOTE_TEXTS",
    "PATIENT_TIMELINE",
    "TABLES",
    "decode",
    "entity_rows",
    "entity_rows_of",
    "parse_note_file",
]
