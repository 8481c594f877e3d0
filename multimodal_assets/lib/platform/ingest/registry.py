"""The file registry and the quarantine tables, and the contract of a reader: rows, the records it could not read, or a QuarantineError."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..tables import Column, Table

FILE_STATUSES = ("ingested", "quarantined", "duplicate")
Parsed = list[dict] | pa.Table

# Delivered file names can carry patient names (Synthea names files after the patient).
_PATH = Column(
    "path", "VARCHAR", "Path relative to the landing folder.", "phi", "hipaa", nullable=False
)
_SHA256 = Column("sha256", "VARCHAR", "SHA-256 of the file's bytes.", "none", nullable=False)
_MODALITY = Column("modality", "VARCHAR", "Landing modality folder.", "none", nullable=False)

FILES = Table(
    layer="bronze",
    name="files",
    modality="all",
    description="One row per version of a landed file (its path and the hash of its bytes): size, "
    "arrival and ingest outcome. A path whose bytes change gets a second row, quarantined.",
    primary_key=("path", "sha256"),
    restricted=True,
    columns=(
        _PATH,
        _SHA256,
        Column("bytes", "BIGINT", "File size in bytes.", "none", nullable=False),
        _MODALITY,
        Column(
            "received_at", "TIMESTAMP", "The version's modification time (UTC) when seen.", "none"
        ),
        Column(
            "status",
            "VARCHAR",
            "ingested, quarantined, or duplicate of an ingested file.",
            "none",
            nullable=False,
            allowed=FILE_STATUSES,
        ),
        Column("error_code", "VARCHAR", "Machine-readable reason when quarantined.", "none"),
        Column(
            "error",
            "VARCHAR",
            "Human-readable reason when quarantined (never holds values).",
            "none",
        ),
        Column("records", "BIGINT", "Records parsed from this file.", "none"),
        Column("run_id", "VARCHAR", "Dagster run that registered the file.", "none"),
        Column("registered_at", "TIMESTAMP", "When the file was registered (UTC).", "none"),
    ),
)

QUARANTINE = Table(
    layer="bronze",
    name="quarantine",
    modality="all",
    description="Files that could not be ingested, with the reason; their bytes stay in landing.",
    restricted=True,
    columns=(
        _PATH,
        _SHA256,
        _MODALITY,
        Column("error_code", "VARCHAR", "Machine-readable reason.", "none", nullable=False),
        Column("message", "VARCHAR", "Human-readable reason (never holds values).", "none"),
        Column("run_id", "VARCHAR", "Dagster run that quarantined the file.", "none"),
        Column("quarantined_at", "TIMESTAMP", "When the file was quarantined (UTC).", "none"),
    ),
)


class QuarantineError(Exception):
    """A file that cannot be ingested. The message must describe the problem, never the data."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class PartlyRead:
    """What a parser read from a file whose records stand alone (one JSON event a line), with
    the records it could not read as (line number, code, reason): those are quarantined one by
    one and the rest are ingested."""

    records: Parsed | dict[str, Parsed]
    rejected: list[tuple[int, str, str]]

    @staticmethod
    def split(outcome) -> tuple[object, list[tuple[int, str, str]]]:
        """(the records, the records that could not be read) of a parser's outcome."""
        if isinstance(outcome, PartlyRead):
            return outcome.records, outcome.rejected
        return outcome, []

    @staticmethod
    def join(records, rejected: list[tuple[int, str, str]]):
        """The outcome of `records` with `rejected` ones: a PartlyRead only when there are."""
        return PartlyRead(records, rejected) if rejected else records


# A file of standalone records with more bad records than this, or more bad than good, is not a
# file with a few damaged records: it is quarantined whole.
MAX_REJECTED_RECORDS = 1000


def mostly_bad(rejected: int, records: int) -> bool:
    return rejected > MAX_REJECTED_RECORDS or 2 * rejected > records
