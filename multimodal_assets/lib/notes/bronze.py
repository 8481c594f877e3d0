"""Notes bronze: note files (plain text in any common encoding, HL7 CDA, backtick exports) into raw text rows, restricted."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from datetime import date

from ..platform.ingest import QuarantineError
from ..platform.tables import Column, Table, provenance_columns
from .dates import date_mentions

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
        from .cda import parse_cda

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
