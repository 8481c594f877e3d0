"""A tumor-board packet's content: `Fact` (a statement with the record it came from: a landed
file's SHA-256 and the record's locator), `Packet`, and the helpers that make facts of records.
`board_list.py` reads the meeting's list, `board_sections.py` gathers each section.

Decision support: a packet gathers the evidence for the board's review; it recommends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from ..governance import lineage
from .facts import query_rows

ACTIONABILITY_SOURCE = (
    "bundled hotspot table (reference/genomics/hotspots.csv; ClinVar/OncoKB GRCh38, see "
    "SOURCES.md): approved targeted therapy in NSCLC at the time of writing"
)
# Where each modality's data is looked for (the completeness section says so when absent).
LOOKED_IN = {
    "clinical": "silver.patients, silver.conditions, silver.observations",
    "genomics": "silver.genomic_samples, silver.somatic_variants",
    "imaging": "silver.imaging_series, gold.imaging_series_features",
    "notes": "silver.note_entities",
    "wearables": "silver.wearable_events",
}


IDENTIFIER_COLUMNS = (
    "mrn",
    "family_name",
    "given_name",
    "phone",
    "address_line",
    "city",
    "postal_code",
)


@dataclass(frozen=True)
class Fact:
    """One statement of a packet and the record it came from."""

    text: str
    sha256: str | None
    locator: str | None
    on: date | None = None  # the date the statement is about, shifted in a de-identified packet


@dataclass
class Packet:
    research_key: str
    meeting: date
    site: str
    consented: bool
    identity: dict[str, Fact] = field(default_factory=dict)  # identified header only
    # The patient's identifiers (MRN, names, phone, address): what a de-identified packet's
    # scan looks for.
    identifiers: dict = field(default_factory=dict)
    header: dict[str, Fact] = field(default_factory=dict)
    diagnosis: list[Fact] = field(default_factory=list)
    therapy: list[Fact] = field(default_factory=list)
    timeline: list[Fact] = field(default_factory=list)
    molecular: list[Fact] = field(default_factory=list)
    imaging: list[Fact] = field(default_factory=list)
    thumbnail: tuple[bytes, Fact] | None = None
    risk: list[Fact] = field(default_factory=list)
    risk_missing: list[str] = field(default_factory=list)
    similar: list[Fact] = field(default_factory=list)
    trials: list[dict] = field(default_factory=list)  # arm, status, criteria facts, questions
    completeness: list[tuple[str, Fact | None, str]] = field(default_factory=list)


def query_one(conn, sql: str, params: dict) -> dict | None:
    rows = query_rows(conn, sql, params)
    return rows[0] if rows else None


def record_fact(row: dict, text: str, on: date | None = None) -> Fact:
    return Fact(text, row["_source_sha256"], row["_source_locator"], on)


def derived_fact(conn, table_column: str, key: str, text: str, on: date | None = None) -> Fact:
    """A value computed from records (a score, a TMB): its record is the lineage API's first."""
    table, column = table_column.rsplit(".", 1)
    records = lineage.explain_value(conn, table, column, key).records
    sha, locator = (records[0][1], records[0][2]) if records else (None, None)
    return Fact(text, sha, locator, on)
