"""Tumor-board lists: `landing/tumor_board/<meeting-date>.csv`, one listed patient a row."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

MEETING_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})\.csv")


class BoardListError(ValueError):
    """A board list this reader cannot use (the reason names the row, never a value)."""


@dataclass(frozen=True)
class BoardEntry:
    patient: str  # MRN or research key, as listed
    site: str  # the presenting clinician's site


@dataclass(frozen=True)
class BoardList:
    meeting: date
    entries: tuple[BoardEntry, ...]
    sha256: str


def read_board_list(path: Path) -> BoardList:
    """`landing/tumor_board/<meeting-date>.csv`: a header `patient,site`, one row per patient."""
    import hashlib

    found = MEETING_FILE.fullmatch(path.name)
    if not found:
        raise BoardListError(f"{path.name}: the file name must be the meeting date, YYYY-MM-DD.csv")
    data = path.read_bytes()
    try:
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    except UnicodeDecodeError:
        raise BoardListError(f"{path.name}: not UTF-8 text") from None
    entries = []
    for number, row in enumerate(rows, start=2):
        patient, site = (row.get("patient") or "").strip(), (row.get("site") or "").strip()
        if not patient or not site:
            raise BoardListError(f"{path.name}: row {number} needs a patient and a site")
        entries.append(BoardEntry(patient, site))
    if not entries:
        raise BoardListError(f"{path.name}: no patients listed")
    return BoardList(
        date.fromisoformat(found.group(1)), tuple(entries), hashlib.sha256(data).hexdigest()
    )


def resolve_patients(conn, board: BoardList) -> list[tuple[BoardEntry, str | None]]:
    """Each listed patient's research key (None when no patient has that MRN or key)."""
    refs = [e.patient for e in board.entries]
    known = {
        r[0]: r[1]
        for r in conn.execute(
            "SELECT mrn, research_key FROM silver.patients WHERE mrn IN (SELECT unnest($refs)) "
            "UNION ALL SELECT research_key, research_key FROM silver.patients "
            "WHERE research_key IN (SELECT unnest($refs))",
            {"refs": refs},
        ).fetchall()
    }
    return [(e, known.get(e.patient)) for e in board.entries]
